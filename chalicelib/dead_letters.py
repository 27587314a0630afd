"""Callback events that were never accepted by the receiver: after the retries of the events
queue (schema.EVENTS_MAX_RECEIVES with the sender's backoff: hours) SQS moves them to the
dead-letter FIFO queue, where they are kept 14 days. Admins list and redeliver them
(`python -m chalicelib.admin dead-letters [--redeliver]`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

PEEK_S = 30  # how long listed messages stay hidden before they are released again


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    sdkappid: int
    task_id: str
    event_type: int
    first_sent_ms: int
    receipt: str
    body: str
    group: str

    def public_view(self) -> dict[str, Any]:
        return {"MessageId": self.message_id, "SdkAppId": self.sdkappid, "TaskId": self.task_id,
                "EventType": self.event_type, "FirstSentMs": self.first_sent_ms}


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of a dead-letter queue, hidden for PEEK_S so that a listing sees each once."""
    found: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_S,
                                   AttributeNames=["All"], WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return found
        found += msgs


def _take(sqs: Any, url: str) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    for m in receive_all(sqs, url):
        try:
            body = json.loads(m["Body"])
            event = body.get("Event", {})
            sdkappid, task_id, event_type = int(body.get("SdkAppId", 0)), \
                str(event.get("EventInfo", {}).get("TaskId", "")), int(event.get("EventType", 0))
        except (ValueError, AttributeError, TypeError):
            sdkappid, task_id, event_type = 0, "", 0
        attrs = m.get("Attributes", {})
        found.append(DeadLetter(m["MessageId"], sdkappid, task_id, event_type, int(attrs.get("SentTimestamp", 0)),
                                m["ReceiptHandle"], m["Body"], attrs.get("MessageGroupId", task_id or "dead")))
    return found


def list_dead(sqs: Any, dlq_url: str) -> list[DeadLetter]:
    """Every dead letter, oldest first; they stay in the queue."""
    letters = _take(sqs, dlq_url)
    for letter in letters:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)
    return sorted(letters, key=lambda d: d.first_sent_ms)


def redeliver(sqs: Any, dlq_url: str, events_url: str, now: float | None = None) -> list[DeadLetter]:
    """Move every dead letter back to the events queue (in their original order per task)."""
    letters = sorted(_take(sqs, dlq_url), key=lambda d: d.first_sent_ms)
    stamp = int((now if now is not None else time.time()) * 1000)
    for letter in letters:
        sqs.send_message(QueueUrl=events_url, MessageBody=letter.body, MessageGroupId=letter.group,
                         MessageDeduplicationId=f"{letter.message_id}-redelivered-{stamp}")
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt)
    return letters
