"""When to try a failed call again: one pure retry policy (delays, attempts, deadline) and one
classification of the errors the AWS and Tencent SDKs raise (transient: another attempt may
succeed; permanent: it will fail the same way), used by every caller that retries.

Callers hold a `RetryPolicy` (tests inject a fast one); `call` runs a blocking function under
it, and loops that must stay on an event loop ask `policy.delay(...)` themselves.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

T = TypeVar("T")

# error codes of S3 / COS / DynamoDB that say "not now" rather than "never"
TRANSIENT_CODES = frozenset({
    "InternalError", "RequestTimeout", "RequestTimeTooSkewed", "ServiceUnavailable", "SlowDown", "Throttling",
    "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TransactionInProgressException",
})
# Tencent Cloud API 3.0 codes (prefixes) worth another attempt
_TRANSIENT_TENCENT = ("InternalError", "RequestLimitExceeded", "FailedOperation.NetWorkError")


class Failure(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def error_code(error: BaseException) -> str:
    """The service's error code of a failed call (`NoSuchBucket`, `AccessDenied` …), else the
    exception's class name."""
    cause = unwrapped(error)
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code") or "Unknown")
    code = getattr(cause, "get_code", None)  # TencentCloudSDKException
    if callable(code) and code():
        return str(code())
    return type(cause).__name__


def classify(error: BaseException) -> Failure:
    """Whether the same call may succeed if it is tried again."""
    cause = unwrapped(error)
    if isinstance(cause, ClientError):
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = error_code(cause) in TRANSIENT_CODES or status >= 500 or status == 429
        return Failure.TRANSIENT if transient else Failure.PERMANENT
    if isinstance(cause, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError)):
        return Failure.TRANSIENT
    request_id = getattr(cause, "get_request_id", None)
    if callable(request_id):  # TencentCloudSDKException: no RequestId means no answer came back
        return Failure.TRANSIENT if not request_id() or error_code(cause).startswith(_TRANSIENT_TENCENT) \
            else Failure.PERMANENT
    return Failure.PERMANENT  # local files, bad parameters, missing credentials: retrying cannot help


def unwrapped(error: BaseException) -> BaseException:
    """boto3's upload_file reports a ClientError as an S3UploadFailedError raised while handling it."""
    if isinstance(error, S3UploadFailedError) and error.__context__ is not None:
        return error.__context__
    return error


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try: `delays_s[n]` is the wait after the (n+1)-th failure (the
    last one repeats); at most `attempts` tries (None: no limit) within `deadline_s` seconds of the
    first (None: no deadline)."""

    delays_s: tuple[float, ...]
    attempts: int | None = None
    deadline_s: float | None = None

    def delay(self, failures: int, elapsed_s: float = 0.0) -> float | None:
        """Seconds to wait after `failures` failed attempts before the next; None to give up."""
        if self.attempts is not None and failures >= self.attempts:
            return None
        wait = self.delays_s[min(failures - 1, len(self.delays_s) - 1)] if self.delays_s else 0.0
        if self.deadline_s is not None and elapsed_s + wait > self.deadline_s:
            return None
        return wait


def call(fn: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> T:
    """`fn()`, tried again after transient failures as long as the policy allows; the last
    failure (or the first permanent one) is raised."""
    started = clock()
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            failures += 1
            wait = policy.delay(failures, clock() - started) if classify(exc) is Failure.TRANSIENT else None
            if wait is None:
                raise
        sleep(wait)
