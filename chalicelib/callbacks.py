"""Delivering queued events to the app's callback URL, signed (spec §5.1–5.2).

`deliver` raises CallbackError when the receiver does not answer 200 within `DEADLINE_S`;
the SQS handler then leaves the message on the queue (with a growing visibility timeout) so
it is retried in order.

TRTC counts an answer after 5 s as a failure and posts again. cloudrec waits up to 10 s for
the whole POST (connect, send, status): a slow receiver that does take the event would
otherwise get it twice, or, answering in 8 s every time, forever. Receivers that answer
within 5 s see no difference.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.apps import AppRegistry
from chalicelib.event_log import EventLog
from chalicelib.fetch import AddressPolicy, FetchError, address_policy, check_url, connection
from chalicelib.signing import callback_sign

DEADLINE_S = 10.0  # the whole POST; the function that posts gets twice that (.chalice/config.json)
MAX_BACKOFF_S = 300

log = logging.getLogger(__name__)


class CallbackError(Exception):
    """The receiver did not take the event; it stays queued."""


@dataclass(frozen=True)
class Post:
    url: str
    body: bytes
    headers: dict[str, str]


def build_post(message: dict[str, Any], apps: AppRegistry, now_ms: int) -> Post | None:
    """The signed POST for a queued event, or None when its app has no callback URL."""
    sdkappid = int(message["SdkAppId"])
    app = apps.get_app(sdkappid)
    if app is None or not app.callback_url:
        return None
    event = message["Event"]
    body = json.dumps(
        {"EventGroupId": event["EventGroupId"], "EventType": event["EventType"],
         "CallbackTs": now_ms, "EventInfo": event["EventInfo"]},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")
    headers = {"Content-Type": "application/json", "SdkAppId": str(sdkappid)}
    if app.callback_key:
        headers["Sign"] = callback_sign(app.callback_key, body)
    return Post(app.callback_url, body, headers)


def send(post: Post, deadline_s: float = DEADLINE_S, policy: AddressPolicy | None = None) -> None:
    """POST with http.client, which keeps header names as TRTC spells them (SdkAppId, Sign) and
    follows no redirect, to an address checked against `policy` (by default the deployment's:
    public addresses only unless CLOUDREC_ALLOW_PRIVATE_URLS=1), answered within `deadline_s`
    in all. A refused URL is a failure like any other: retried, then dead-lettered, so the
    events are there to redeliver once the app's URL is fixed."""
    ends_at = time.monotonic() + deadline_s
    try:
        target = check_url(post.url, policy or address_policy(aws.settings().allow_private_urls))
    except FetchError as exc:
        raise CallbackError(f"callback URL refused: {exc}") from None
    try:
        with connection(target, ends_at) as conn:
            conn.request("POST", target.path, body=post.body, headers=post.headers)
            status = conn.getresponse().status
    except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: a path http.client cannot send
        raise CallbackError(f"callback unreachable: {type(exc).__name__}") from None
    if status != 200:
        raise CallbackError(f"callback answered HTTP {status}")


def keep(message: dict[str, Any], journal: EventLog) -> bool:
    """Record the event for the console (chalicelib/event_log.py); False when that failed: the
    callback goes on regardless (the console misses an event, the customer does not)."""
    try:
        journal.record(message)
    except (BotoCoreError, ClientError) as exc:
        log.warning("event not recorded for the console: %s", type(exc).__name__)
        return False
    return True


def deliver(message: dict[str, Any], apps: AppRegistry, now_ms: int,
            sender: Callable[[Post], None] = send, journal: EventLog | None = None) -> bool:
    """Post one queued event (its message, parsed), recorded first in `journal` if given; False
    when there is nowhere to post it."""
    if journal is not None:
        keep(message, journal)
    post = build_post(message, apps, now_ms)
    if post is None:
        return False
    sender(post)
    return True


def retry_delay_s(receive_count: int, base_s: float = 10) -> int:
    """Visibility timeout after the n-th failed attempt: 10 s, 20 s, 40 s … capped at 5 min."""
    return max(1, int(min(MAX_BACKOFF_S, base_s * 2 ** max(0, receive_count - 1))))


def record_receive_count(record: dict[str, Any]) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


def hold_back(records: list[dict[str, Any]], failed: set[str], base_s: float) -> list[tuple[str, int]]:
    """(receipt handle, visibility timeout) for every failed record. The first failed event of a task
    stays invisible for the backoff of its attempt count; the task's events behind it are released at
    once: its FIFO group stays locked while its head is in flight, and they follow it in order."""
    held: set[str] = set()
    holds = []
    for record in records:
        if record["messageId"] not in failed:
            continue
        group = record.get("attributes", {}).get("MessageGroupId", "")
        if group in held:
            holds.append((record["receiptHandle"], 0))
        else:
            held.add(group)
            holds.append((record["receiptHandle"], retry_delay_s(record_receive_count(record), base_s)))
    return holds
