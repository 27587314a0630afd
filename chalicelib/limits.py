"""Requests-per-second limits per app and action, shared by every API process.

A fixed one-second window per (SdkAppId, action): one conditional ADD in DynamoDB per
request, so the count holds across Lambda instances and local API processes alike.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import RateLimitedError

WINDOW_TTL_S = 120


class RateLimiter:
    """Counts requests per second in the limits table and refuses those beyond the limit."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

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
