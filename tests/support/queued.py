"""Events waiting in the (in-process moto) events queue, as the callback handler would get them."""

from __future__ import annotations

import json
from typing import Any

from chalicelib import aws, wiring


def queued_events(event_type: int | None = None) -> list[dict[str, Any]]:
    """Every event in the queue, in order (they stay hidden for a minute once read)."""
    url = wiring.event_queue().url
    found: list[dict[str, Any]] = []
    while True:
        msgs = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                 VisibilityTimeout=60).get("Messages", [])
        if not msgs:
            return [e for e in found if event_type is None or e["EventType"] == event_type]
        found += [json.loads(m["Body"])["Event"] for m in msgs]
