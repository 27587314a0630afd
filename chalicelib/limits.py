"""Requests-per-second limits per app and action, shared by every API process, and a
per-process brake on sources whose requests keep failing authentication.

A fixed one-second window per (SdkAppId, action): one conditional ADD in DynamoDB per
request, so the count holds across Lambda instances and local API processes alike. A window
can also keep short traces of what it counted (chalicelib/replay.py keeps Describes' signatures
there), as many as fit in one write unit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import RateLimitedError

WINDOW_TTL_S = 120
# Traces a window keeps: 24 of replay.TRACE_CHARS (+ the set's overhead) keep its item under the
# 1 KB a write unit covers, so counting with a trace costs what counting alone does.
TRACE_SLOTS = 24


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

    def hit(self, sdkappid: int, action: str, limit: int, now: float, trace: str = "") -> bool:
        """Count one request, or raise RateLimitedError. With `trace`, the window keeps it too
        while it has room (TRACE_SLOTS); returns whether it was kept."""
        second = int(now)
        values: dict[str, dict[str, Any]] = {
            ":one": {"N": "1"}, ":limit": {"N": str(limit)}, ":ttl": {"N": str(second + WINDOW_TTL_S)}}
        update, condition = "ADD n :one SET expires_at = :ttl", "attribute_not_exists(n) OR n < :limit"
        if trace:
            values.update({":traces": {"SS": [trace]}, ":trace": {"S": trace}, ":slots": {"N": str(TRACE_SLOTS)}})
            update = "ADD n :one, traces :traces SET expires_at = :ttl"
            condition = (f"({condition}) AND (attribute_not_exists(traces) OR size(traces) < :slots"
                         " OR contains(traces, :trace))")
        try:
            self._db.update_item(TableName=self._table, Key=_window(sdkappid, action, second),
                                 UpdateExpression=update, ConditionExpression=condition,
                                 ExpressionAttributeValues=values, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            if trace and int(err.response.get("Item", {}).get("n", {}).get("N", "0")) < limit:
                return self.hit(sdkappid, action, limit, now)  # counted, but its window has no room for the trace
            raise RateLimitedError(
                f"{action} is limited to {limit} requests per second for SdkAppId {sdkappid}."
            ) from None
        return bool(trace)

    def traces(self, sdkappid: int, action: str, seconds: range) -> set[str]:
        """The traces the windows of these seconds kept (strongly consistent)."""
        keys = [_window(sdkappid, action, s) for s in seconds]
        found: set[str] = set()
        for _ in range(5):  # DynamoDB may leave keys unread under load
            got = self._db.batch_get_item(RequestItems={self._table: {
                "Keys": keys, "ProjectionExpression": "traces", "ConsistentRead": True}})
            for item in got.get("Responses", {}).get(self._table, []):
                found.update(item.get("traces", {}).get("SS", []))
            keys = got.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if not keys:
                return found
        raise RuntimeError("the limits table left windows unread five times")


def _window(sdkappid: int, action: str, second: int) -> dict[str, Any]:
    return {"pk": {"S": f"rate#{sdkappid}#{action}#{second}"}}


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
