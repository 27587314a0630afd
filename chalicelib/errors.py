"""The error tree of cloudrec, and the one place that maps it to API 3.0 error codes.

CloudrecError
├── AuthError                  AuthFailure.*  (signature, SecretId, app ownership)
├── RequestError               malformed envelope: action, version, body, region, protocol
├── ParameterError             InvalidParameter.* / MissingParameter.* from validation
├── UserSigError               InvalidParameter.UserSig
├── TaskNotFoundError          ResourceNotFound
├── RateLimitedError           RequestLimitExceeded
├── ConcurrencyLimitError      FailedOperation.RestrictedConcurrency
└── ServiceError               InternalError.CRInternalError (our own fault: store, launcher)
"""

from __future__ import annotations

INTERNAL_ERROR = "InternalError.CRInternalError"


class CloudrecError(Exception):
    """Base of every error that reaches an API caller with a code and a message."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class AuthError(CloudrecError):
    """The request is not authenticated or not authorised (AuthFailure.*)."""

    code = "AuthFailure"


class RequestError(CloudrecError):
    """The request envelope is unusable: action, version, body, region or method."""

    code = "InvalidParameter"


class ParameterError(CloudrecError):
    """A request field is missing, of the wrong type or out of range."""

    code = "InvalidParameter"


class UserSigError(CloudrecError):
    """The robot's UserSig is malformed, forged, expired or for another user or app."""

    code = "InvalidParameter.UserSig"


class TaskNotFoundError(CloudrecError):
    """The task is unknown, belongs to another app, has ended or is past its API window."""

    code = "ResourceNotFound"


class RateLimitedError(CloudrecError):
    """More requests per second for one action of one app than its limit allows."""

    code = "RequestLimitExceeded"


class ConcurrencyLimitError(CloudrecError):
    """The app already runs as many tasks as its limit allows."""

    code = "FailedOperation.RestrictedConcurrency"


class ServiceError(CloudrecError):
    """Our own fault (storage, launcher): the caller may retry with the same parameters."""

    code = INTERNAL_ERROR


def to_api_error(exc: BaseException) -> tuple[str, str]:
    """Return the (Code, Message) an API caller sees for an exception.

    Anything that is not a CloudrecError is our own fault: its text may hold internals,
    so the caller gets a generic message.
    """
    if isinstance(exc, CloudrecError):
        return exc.code, exc.message
    return INTERNAL_ERROR, "Internal error of the recording service; retry with the same parameters."
