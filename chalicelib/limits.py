"""Requests-per-second limits per app and action, shared by every API process, and a
per-process brake on sources whose requests keep failing authentication.

A fixed one-second window per (SdkAppId, action): one conditional ADD in DynamoDB per
request, so the count holds across Lambda instances and local API processes alike.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import RateLimitedError

WINDOW_TTL_S = 120


class RateLimiter:
    """Counts requests per second in the limits table and refuses those beyond the limit."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    @property
    def client(self) -> Any:
        return self._db

    @property
    def table(self) -> str:
        return self._table

    def hit(self, sdkappid: int, action: str, limit: int, now: float) -> None:
        second = int(now)
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"rate#{sdkappid}#{action}#{second}"}},
                UpdateExpression="ADD n :one SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(n) OR n < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":ttl": {"N": str(second + WINDOW_TTL_S)},
                },
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise RateLimitedError(
                    f"{action} is limited to {limit} requests per second for SdkAppId {sdkappid}."
                ) from None
            raise


AUTH_FAILURES = 20  # per source and window: an SDK with a wrong key fails a few times, not 20 (0: no limit)
AUTH_WINDOW_S = 10
TRACKED_SOURCES = 4096


class FailureLimiter:
    """Refuses, before any work, a source that failed authentication too often lately.

    In memory and per process (a Lambda instance, a local API process): it bounds what one
    source costs each process, not what a botnet costs the service (that is a WAF's job).
    """

    def __init__(self, limit: int = AUTH_FAILURES, window_s: int = AUTH_WINDOW_S) -> None:
        self._limit = limit
        self._window_s = window_s
        self._counts: OrderedDict[str, tuple[int, int]] = OrderedDict()  # source -> (window, failures)
        self._lock = threading.Lock()

    def check(self, source: str, now: float) -> None:
        if not source or self._limit <= 0:
            return
        window = int(now) // self._window_s
        with self._lock:
            seen = self._counts.get(source)
        if seen is not None and seen[0] == window and seen[1] >= self._limit:
            raise RateLimitedError(
                f"Too many requests from {source} failed authentication; wait {self._window_s} seconds.",
                "RequestLimitExceeded.IPLimitExceeded",
            )

    def failed(self, source: str, now: float) -> None:
        if not source:
            return
        window = int(now) // self._window_s
        with self._lock:
            seen = self._counts.pop(source, None)
            count = seen[1] + 1 if seen is not None and seen[0] == window else 1
            self._counts[source] = (window, count)
            while len(self._counts) > TRACKED_SOURCES:
                self._counts.popitem(last=False)
