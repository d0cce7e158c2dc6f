"""The endpoint's refusals, each carrying the HTTP status the serving toolkit answers with.

sagemaker_inference.transformer answers an exception's own status only when it is an instance
of BaseInferenceToolkitError (anything else is a 500). The toolkit exists only inside the
endpoint container (and the dev environment), so subclass it there and use a
signature-compatible stand-in elsewhere.
"""

from __future__ import annotations

import json
from http import HTTPStatus

try:
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitErrorBase
except ImportError:

    class _ToolkitErrorBase(Exception):  # type: ignore[no-redef]
        """Same constructor and attributes as sagemaker_inference.errors.BaseInferenceToolkitError."""

        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


# The toolkit ships no type information, so its base class is Any to a type checker.
class InferenceError(_ToolkitErrorBase):  # type: ignore[misc]
    """A request the endpoint refuses, with its HTTP status.

    ``message`` is a JSON document ``{"error": code, "message": detail, "status": status}``; the
    toolkit writes it as the first line of the response body (followed by a traceback), which
    ``invoke_endpoint`` surfaces as ``ModelError`` with ``OriginalStatusCode``.
    """

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        body = json.dumps({"error": code, "message": detail, "status": status})
        super().__init__(status, body, HTTPStatus(status).phrase)
        # Set again so the attributes hold whichever base class is in use.
        self.status_code = status
        self.message = body

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.detail}"


def bad_request(code: str, detail: str) -> InferenceError:
    return InferenceError(HTTPStatus.BAD_REQUEST, code, detail)


def too_large(code: str, detail: str) -> InferenceError:
    return InferenceError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code, detail)
