"""Service errors with the codes and HTTP statuses real SageMaker answers."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Becomes a botocore ``ClientError`` with ``code`` on the caller's side."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFound", message)


def in_use(message: str) -> ServiceError:
    return ServiceError("ResourceInUse", message)
