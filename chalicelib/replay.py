"""Replay and action-swap protection for TC3 signatures.

The official SDK signs only `content-type;host` and the body, never `X-TC-Action`: a
captured Describe (`{"SdkAppId", "TaskId"}`) is byte for byte a valid Delete, and any
captured request stays valid for the whole timestamp window. So every signature that passed
verification is recorded with its action, in the limits table (conditional writes, so it holds
across API processes), until its timestamp can no longer pass the skew check.

A Describe signed on time (within SWAP_GRACE_S of the server's clock, as any client with a set
clock) leaves its trace in the rate window that counts it (limits.RateLimiter.hit): one write,
as before signatures were recorded. Reuse under another action is allowed until SWAP_GRACE_S
after its timestamp anyway, so such a Describe needs no check, and a later Modify or Delete
looks for it in the windows of the seconds it could have come in.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from chalicelib.errors import AuthError, RateLimitedError
from chalicelib.limits import RateLimiter
from chalicelib.signing import MAX_CLOCK_SKEW_S

log = logging.getLogger(__name__)

CREATE = "CreateCloudRecording"
DESCRIBE = "DescribeCloudRecording"
READ_ONLY = frozenset({DESCRIBE})
# kept past the window a signature can pass (±skew) so a clock step never reopens it
KEEP_S = 2 * MAX_CLOCK_SKEW_S + 60
# A Create that failed (launch error, limit) may be sent again unchanged at once, as its error
# says. Within this much of the first attempt that is safe: a repeat either starts the task
# the caller asked for or meets the identical task and gets its TaskId (recordings' one-minute
# idempotency), never kicks a later one.
CREATE_RETRY_S = 10

# A legitimate client can send one signature under two actions: the SDK signs only the body
# and the second-resolution timestamp, so a Describe and a Delete of one task within one
# second are byte-identical — the official SDK's everyday "Describe, then Delete". Only a
# request of that same second (and its way here) can collide so: a signature used under
# another action passes within SWAP_GRACE_S of its timestamp, and is refused after. That
# leaves a captured request 3 s instead of the whole timestamp window (5 min).
SWAP_GRACE_S = 3
# "Too frequent, send again" is the honest answer for a repeat: the SDK re-signs a retry
REPLAY_CODE = "RequestLimitExceeded"
SWAP_CODE = "RequestLimitExceeded"
# what a rate window keeps of a Describe's signature: 80 bits of an HMAC tell the few
# Describes of one app's few seconds apart
TRACE_CHARS = 20
# an off-time Describe's signature is recorded while it is counted, not after
_WRITES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ledger")


def on_time(timestamp: int, now: float) -> bool:
    return abs(now - timestamp) <= SWAP_GRACE_S


class SignatureLedger:
    """Which signatures were used, for which action, and the TaskId a Create answered."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._db = limiter.client
        self._table = limiter.table

    def admit(self, sdkappid: int, action: str, limit: int, signature: str, timestamp: int,
              now: float) -> str | None:
        """Count a request against its app's rate limit and record its signature; None, or the
        TaskId a repeated Create answered the first time (see `claim`). Raises AuthError for a
        replay or a swap, RateLimitedError past the limit."""
        if action not in READ_ONLY:
            first_answer = self.claim(sdkappid, signature, action, timestamp, now)
            if first_answer is None:
                self._limiter.hit(sdkappid, action, limit, now)
            return first_answer
        if on_time(timestamp, now):
            try:
                kept = self._limiter.hit(sdkappid, action, limit, now, trace=signature[:TRACE_CHARS])
            except RateLimitedError:
                self._record_read(sdkappid, signature, timestamp, now)  # refused, but its signature was seen
                raise
            if not kept:  # the window is full of other Describes' traces
                self._record_read(sdkappid, signature, timestamp, now)
            return None
        recording = _WRITES.submit(self.claim, sdkappid, signature, action, timestamp, now)
        try:
            self._limiter.hit(sdkappid, action, limit, now)
        finally:
            self._settle(functools.partial(recording.result, timeout=5))
        return None

    def _record_read(self, sdkappid: int, signature: str, timestamp: int, now: float) -> None:
        self._settle(functools.partial(self.claim, sdkappid, signature, DESCRIBE, timestamp, now))

    @staticmethod
    def _settle(record: Callable[[], object]) -> None:
        """Wait for a Describe's record (`claim`, or its future's result)."""
        try:
            record()
        except AuthError:  # the signature of a Modify or Delete, past the grace
            raise
        except Exception:  # its answer is right either way; only a later swap would go unseen
            log.warning("a Describe's signature could not be recorded", exc_info=True)

    def claim(self, sdkappid: int, signature: str, action: str, timestamp: int, now: float) -> str | None:
        """Record the first use of `signature` and return None; for a repeat, return the
        TaskId the same Create answered the first time, or raise AuthError.

        A repeated Create gets its first answer again instead of a second task: a client
        that retries within the same second sends the very same signature. One whose first
        attempt failed runs again within CREATE_RETRY_S. A repeated Describe is harmless and
        passes. A repeated Modify or Delete is refused, and so is a signature first used for
        another action once SWAP_GRACE_S have passed since its timestamp (both
        RequestLimitExceeded).
        """
        key = {"pk": {"S": f"sig#{signature}"}}
        try:
            before = self._db.update_item(
                TableName=self._table, Key=key,
                UpdateExpression="ADD actions :action SET seen_at = if_not_exists(seen_at, :now), expires_at = :exp",
                ConditionExpression="NOT contains(actions, :name)",
                ExpressionAttributeValues={":action": {"SS": [action]}, ":name": {"S": action},
                                           ":now": {"N": str(int(now))}, ":exp": {"N": str(timestamp + KEEP_S)}},
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        else:
            if now - timestamp <= SWAP_GRACE_S:
                return None  # its first use; or the same client's next request of the same second
            if not before.get("actions") and (action in READ_ONLY or
                                              not self._described_on_time(sdkappid, signature, timestamp)):
                return None
            raise AuthError("This signature was already used for another action; send the request again "
                            "in a second (every request needs its own signature).", SWAP_CODE)
        if action in READ_ONLY:
            return None
        earlier = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})
        if action == CREATE and "task_id" in earlier:
            return str(earlier["task_id"]["S"])
        if action == CREATE and now - int(earlier.get("seen_at", {}).get("N", "0")) < CREATE_RETRY_S:
            return None
        raise AuthError(f"This signature was already used for a {action} request; send the request again in "
                        "a second (every request needs its own signature).", REPLAY_CODE)

    def answered(self, signature: str, task_id: str) -> None:
        """Remember the TaskId a Create answered, for a repeat of the same signature."""
        self._db.update_item(
            TableName=self._table, Key={"pk": {"S": f"sig#{signature}"}},
            UpdateExpression="SET task_id = :t", ExpressionAttributeValues={":t": {"S": task_id}},
        )

    def _described_on_time(self, sdkappid: int, signature: str, timestamp: int) -> bool:
        """Whether a Describe signed on time used this signature (`on_time`: its trace is in the
        rate window of a second within SWAP_GRACE_S of the timestamp)."""
        seconds = range(timestamp - SWAP_GRACE_S, timestamp + SWAP_GRACE_S + 1)
        return signature[:TRACE_CHARS] in self._limiter.traces(sdkappid, DESCRIBE, seconds)
