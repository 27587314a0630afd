"""Output jobs whose function failed for good: Lambda tries an S3-triggered invocation three
times, then hands the event to the function's on-failure destination, the outputs dead-letter
queue (the local event pump does the same). The overdue-outputs sweep has reported such a job
as failed (post_record.sweep); admins list them and run them again
(`python -m chalicelib.admin failed-outputs [--redeliver]`): the job's marker is written anew,
and its S3 event runs the job again."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from chalicelib.dead_letters import receive_all
from chalicelib.storage import Bucket


@dataclass(frozen=True)
class FailedOutput:
    marker_key: str
    attempts: int
    error: str
    failed_ms: int
    receipt: str

    def public_view(self) -> dict[str, Any]:
        return {"Marker": self.marker_key, "Attempts": self.attempts, "Error": self.error,
                "FailedMs": self.failed_ms}


def destination_record(event: dict[str, Any], attempts: int, error: BaseException, function: str) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination once an asynchronous invocation's retries
    are exhausted (the local event pump sends the same)."""
    return {
        "version": "1.0", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetriesExhausted",
                           "functionArn": f"arn:aws:lambda:local:000000000000:function:{function}:$LATEST",
                           "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error)},
    }


def _parse(message: dict[str, Any]) -> list[FailedOutput]:
    try:
        record = json.loads(message["Body"])
        keys = [urllib.parse.unquote_plus(r["s3"]["object"]["key"]) for r in record["requestPayload"]["Records"]]
        attempts = int(record.get("requestContext", {}).get("approximateInvokeCount", 0))
        error = str(record.get("responsePayload", {}).get("errorMessage", ""))
    except (ValueError, KeyError, TypeError):
        return []
    sent = int(message.get("Attributes", {}).get("SentTimestamp", 0))
    return [FailedOutput(key, attempts, error, sent, message["ReceiptHandle"]) for key in keys]


def _take(sqs: Any, url: str) -> list[FailedOutput]:
    return [failed for message in receive_all(sqs, url) for failed in _parse(message)]


def list_failed(sqs: Any, url: str) -> list[FailedOutput]:
    """Every failed job part, oldest first; they stay in the queue."""
    failed = _take(sqs, url)
    for receipt in {f.receipt for f in failed}:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return sorted(failed, key=lambda f: f.failed_ms)


def redeliver(sqs: Any, url: str, internal: Bucket) -> list[FailedOutput]:
    """Run every failed job part again (its marker written anew) and take it off the queue."""
    failed = _take(sqs, url)
    for part in failed:
        internal.put(part.marker_key, internal.get(part.marker_key), "application/json")
    for receipt in {f.receipt for f in failed}:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)
    return failed
