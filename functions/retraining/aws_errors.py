"""Classifying botocore errors: retry (re-raise for EventBridge), already done, or a logic
error that ends the run."""

from __future__ import annotations

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "ConcurrentUpdateException",  # Application Auto Scaling: the target is mid-update
        # Application Auto Scaling's server-side failure: its model declares no HTTP status,
        # so it may arrive as a 400 that neither botocore nor the >= 500 rule retries.
        "InternalServiceException",
    }
)


class RetryLater(Exception):
    """A transient state our own code detected (e.g. the endpoint is being deleted): the
    event is re-raised so EventBridge/Lambda deliver it again later."""


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


def is_retryable(error: BaseException) -> bool:
    """Transient: worth EventBridge's (and the Lambda async) retry after botocore's own."""
    if isinstance(error, (RetryLater, ConnectionError, ReadTimeoutError)):
        return True
    if not isinstance(error, ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in _RETRYABLE_CODES or int(status or 0) >= 500


def is_already_exists(error: BaseException) -> bool:
    """SageMaker answers a duplicate create with ResourceInUse, or for models and endpoint
    configs with a ValidationException 'Cannot create already existing ...'."""
    code, message = error_code(error), error_message(error).lower()
    if code == "ResourceInUse":
        return True
    return code == "ValidationException" and (
        "already exist" in message or "already existing" in message
    )


def is_not_found(error: BaseException) -> bool:
    """SageMaker answers ResourceNotFound ("... can't find a tuning job ...") for jobs and a
    ValidationException ("Could not find endpoint ...") for endpoints."""
    code, message = error_code(error), error_message(error).lower()
    if code == "ResourceNotFound":
        return True
    return code == "ValidationException" and (
        "could not find" in message or "not found" in message or "does not exist" in message
    )


def is_not_yet_visible(error: BaseException) -> bool:
    """A resource created a moment ago is not visible yet to the next call (SageMaker is
    eventually consistent: CreateEndpoint right after CreateEndpointConfig may answer
    'Could not find endpoint configuration', CreateEndpointConfig 'Could not find model').
    Worth a retry, unlike 'Could not find endpoint' (the endpoint really is absent)."""
    code, message = error_code(error), error_message(error).lower()
    return code == "ValidationException" and (
        "could not find endpoint configuration" in message or "could not find model" in message
    )
