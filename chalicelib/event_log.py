"""Every event a task went through, kept for the console: the callback function records each
queued event it handles (whether or not its app has a callback URL) as one object in the
internal bucket, `events/<TaskId>/<EventMsTs>-<EventType>-<digest>.json`, and the console reads
them back in time order.

The key is made from the event itself (its digest, not a counter): a message the queue hands
out again, or a callback retried, writes the same object again instead of a second one. What is
kept is the callback body as the app receives it (no CallbackTs, no HMAC); events carry no
secrets (DESIGN.md), and a URL in one (309) loses its query and user part here all the same.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chalicelib.storage import Bucket

PREFIX = "events/"
KEEP_DAYS = 30  # then the bucket's lifecycle deletes them (AWS; the task itself is gone 8 days after its end)
MAX_EVENTS = 2000  # a task's events the console reads at most (the earliest ones)
READERS = 8  # objects fetched at once


def prefix(task_id: str) -> str:
    """Where a task's events are (TaskIds hold no "/")."""
    return f"{PREFIX}{task_id}/"


def _bare_url(value: str) -> str:
    parts = urlsplit(value)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def entry(message: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a queued message (chalicelib/events.py `message_body`): its app and its
    callback body, a URL in the payload without query or credentials. KeyError/TypeError for a
    message that is not an event."""
    event = message["Event"]
    info = dict(event["EventInfo"])
    payload = info.get("Payload")
    if isinstance(payload, dict) and isinstance(payload.get("Url"), str):
        info["Payload"] = {**payload, "Url": _bare_url(payload["Url"])}
    return {"SdkAppId": message["SdkAppId"], "EventGroupId": event.get("EventGroupId"),
            "EventType": int(event["EventType"]), "EventInfo": info}


def key(kept: dict[str, Any]) -> str:
    """The object of an event (`entry`'s): its time (ms, 13 digits: keys sort in time order), its
    type and a digest of its content."""
    info = kept["EventInfo"]
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{prefix(info['TaskId'])}{int(info['EventMsTs']):013d}-{kept['EventType']}-{digest}.json"


class EventLog:
    """Tasks' events in the internal bucket."""

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket

    def record(self, message: dict[str, Any]) -> str:
        """Keep one queued event (again: the same object); its key."""
        kept = entry(message)
        where = key(kept)
        self._bucket.put(where, json.dumps(kept, ensure_ascii=False).encode(), "application/json")
        return where

    def read(self, task_id: str, limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
        """A task's events in time order (the first `limit` of them)."""
        keys = sorted(k for k, _ in self._bucket.listing(prefix(task_id), limit))  # S3 lists in key order
        if not keys:
            return []
        with ThreadPoolExecutor(min(READERS, len(keys))) as pool:
            bodies = list(pool.map(self._bucket.get, keys))
        return [json.loads(body) for body in bodies]
