"""Work done once per key however often its trigger is delivered (SQS and S3 events arrive
at least once): Powertools idempotency, its records in a DynamoDB table with a TTL.

A run that is still going (or died) holds its key only until its invocation's time is up;
a run that failed leaves no record, so the redelivered trigger does the work again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

__all__ = ["IdempotencyAlreadyInProgressError", "Once"]

DONE_FOR_S = 7 * 24 * 3600  # a trigger redelivered later than this runs again


@dataclass(frozen=True)
class _Context:
    """What Powertools reads of a Lambda context: how long the running invocation has left."""

    remaining_ms: int
    function_name: str = "cloudrec"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Once:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._store = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)

    def run(self, kind: str, key: str, work: Callable[[], dict[str, Any]], context: Any = None,
            default_remaining_ms: int = 60_000) -> dict[str, Any]:
        """`work()` unless it already ran to completion for (kind, key); its result either way.
        Raises IdempotencyAlreadyInProgressError while another run holds the key."""
        config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=DONE_FOR_S)
        config.register_lambda_context(cast(Any, context if context is not None else _Context(default_remaining_ms)))

        @idempotent_function(data_keyword_argument="item", persistence_store=self._store, config=config,
                             key_prefix=f"cloudrec.{kind}")
        def once(item: dict[str, str]) -> dict[str, Any]:
            return work()

        result: dict[str, Any] = once(item={"key": key})
        return result
