"""Replay and action-swap protection for TC3 signatures.

The official SDK signs only `content-type;host` and the body, never `X-TC-Action`: a
captured Describe (`{"SdkAppId", "TaskId"}`) is byte for byte a valid Delete, and any
captured request stays valid for the whole timestamp window. So every signature that passed
verification is recorded, with its action, in the limits table (one conditional put, so it
holds across API processes) until its timestamp can no longer pass the skew check.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import AuthError
from chalicelib.signing import MAX_CLOCK_SKEW_S

CREATE = "CreateCloudRecording"
READ_ONLY = frozenset({"DescribeCloudRecording"})
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


class SignatureLedger:
    """Which signatures were used, for which action, and the TaskId a Create answered."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def claim(self, signature: str, action: str, timestamp: int, now: float) -> str | None:
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
            if not before.get("actions") or now - timestamp <= SWAP_GRACE_S:
                return None  # its first use; or the same client's next request of the same second
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
