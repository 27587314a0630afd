"""Events waiting in the (in-process moto) events queue, as the callback handler would get them."""

from __future__ import annotations

import json
from typing import Any

from chalicelib import aws, wiring


def queued_events(event_type: int | None = None, take: bool = False) -> list[dict[str, Any]]:
    """Every event in the queue, in order. They stay hidden for a minute once read, and so do a
    task's later events (its FIFO group is in flight) — unless `take` deletes what was read."""
    url = wiring.event_queue().url
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not msgs:
            return [e for e in found if event_type is None or e["EventType"] == event_type]
        found += [json.loads(m["Body"])["Event"] for m in msgs]
        if take:
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(msgs)])
