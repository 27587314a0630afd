"""The operators' console: a page served under `/console` by the API's own deployment (one
origin: no CORS, the same in API Gateway as locally) and the small JSON API it calls under
`/console/api/…`, open only to the holder of CLOUDREC_CONSOLE_KEY (`Authorization: Bearer
<key>`); with no key configured there is no console (404).

What it shows: the registered apps, an app's tasks, and one task — its parameters (never its
storage keys), its events in time order (chalicelib/event_log.py), its files with presigned
URLs (chalicelib/console_files.py) and its recording report.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import config, console_files, recording_report
from chalicelib.apps import AppRegistry
from chalicelib.errors import RateLimitedError
from chalicelib.event_log import EventLog
from chalicelib.limits import FailureLimiter
from chalicelib.storage import COS, Bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import TaskRecord

log = logging.getLogger(__name__)
_de = TypeDeserializer()

# the page and what it loads: sources in the checkout's console/ (hls.js from npm, `make console`);
# in a package (Lambda) a copy in chalicelib/console_static/ (`make package` makes it)
SOURCES = {"index.html": "console/index.html", "console.js": "console/console.js",
           "console.css": "console/console.css", "hls.min.js": "console/node_modules/hls.js/dist/hls.min.js"}
PACKAGED = Path(__file__).with_name("console_static")
TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# the page runs its own scripts only; media and segments come from the storage's (presigned) URLs,
# hls.js feeds them to the player through blob: URLs and may run its worker from one
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self' https: http:; media-src 'self' blob: https: http:; worker-src blob:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
TASKS_SHOWN = 200  # an app's newest tasks the list shows
SCAN_PAGES = 100  # pages of the tasks table a list reads at most (1 MB each)
_TASK_FIELDS = ("task_id", "sdkappid", "room_id", "room_id_type", "user_id", "status", "desired", "created_ms",
                "ended_ms", "ha_count", "leave_code")


class ConsoleNotFoundError(LookupError):
    """No such app, task or file (for this app)."""


@dataclass(frozen=True)
class Reply:
    """What a console route answers."""

    status: int
    body: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def configured_key() -> str:
    """The operators' key ("" : no console)."""
    return config.CLOUDREC_CONSOLE_KEY.get(os.environ)


def _json(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(body, ensure_ascii=False), "application/json",
                 {"Cache-Control": "no-store", **SAFE_HEADERS, **headers})


NOT_FOUND = _json(404, {"Error": "NotFound"})


# -- the page -------------------------------------------------------------------------------

def asset_path(name: str) -> Path | None:
    """Where one of the page's files is: the checkout's sources first, else the packaged copy."""
    source = SOURCES.get(name)
    if source is None:
        return None
    for path in (config.PROJECT_ROOT / source, PACKAGED / name):
        if path.is_file():
            return path
    return None


def asset(name: str, if_none_match: str = "") -> Reply:
    """The page (`index.html`) or a file it loads, with an ETag; 404 without a console."""
    path = asset_path(name) if configured_key() else None
    if path is None:
        return NOT_FOUND
    body = path.read_text(encoding="utf-8")
    tag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache", **SAFE_HEADERS}
    if name == "index.html":
        headers["Content-Security-Policy"] = PAGE_POLICY
    if if_none_match == tag:
        return Reply(304, "", TYPES[name.rpartition(".")[2]], headers)
    return Reply(200, body, TYPES[name.rpartition(".")[2]], headers)


def page(path: str, if_none_match: str = "") -> Reply:
    """The page at `…/console`. At `…/console/` (the same route to API Gateway) the page's relative
    links would miss: sent to the address without the slash."""
    if configured_key() and path.endswith("/"):
        return Reply(301, "", "text/plain", {"Location": path.rstrip("/"), **SAFE_HEADERS})
    return asset("index.html", if_none_match)


# -- who may call the API ---------------------------------------------------------------------

@functools.cache
def failures(limit: int) -> FailureLimiter:
    """This process's count of wrong keys per source (CLOUDREC_AUTH_FAILURE_LIMIT per 10 s)."""
    return FailureLimiter(limit)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).digest()


def refusal(authorization: str, source: str, now: float, limit: int) -> Reply | None:
    """None when `authorization` bears the operators' key; else the answer: 404 without a
    console, 429 for a source that keeps failing, 401. Compared in constant time (of digests: not
    even the key's length shows); neither key is ever logged."""
    key = configured_key()
    if not key:
        return NOT_FOUND
    limiter = failures(limit)
    try:
        limiter.check(source, now)
    except RateLimitedError:
        return _json(429, {"Error": "TooManyFailures"}, **{"Retry-After": "10"})
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(_digest(given.strip()), _digest(key)):
        return None
    limiter.failed(source, now)
    log.warning("console: a request without the operators' key was refused")
    return _json(401, {"Error": "Unauthorized"}, **{"WWW-Authenticate": "Bearer"})


# -- what it shows ----------------------------------------------------------------------------

class TaskListing:
    """An app's tasks for the console: a Scan of the tasks table (it has no index by app),
    filtered by SdkAppId and projected to what the list shows. The table holds the live tasks
    and those that ended in the last 8 days (TTL), which bounds the scan; the newest are shown."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def of_app(self, sdkappid: int, shown: int = TASKS_SHOWN) -> tuple[list[dict[str, Any]], bool]:
        """(tasks newest first, whether some were left out)."""
        names = {f"#{n}": n for n in _TASK_FIELDS}
        kwargs: dict[str, Any] = {"TableName": self._table, "ProjectionExpression": ", ".join(names),
                                  "FilterExpression": "#sdkappid = :app", "ExpressionAttributeNames": names,
                                  "ExpressionAttributeValues": {":app": {"N": str(sdkappid)}}}
        items: list[dict[str, Any]] = []
        for _ in range(SCAN_PAGES):
            page = self._db.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        else:
            return _newest(items, shown), True
        return _newest(items, shown), len(items) > shown


def _number(value: Any) -> int | None:
    return int(value) if value is not None else None


def _newest(items: list[dict[str, Any]], shown: int) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        raw = {k: _de.deserialize(v) for k, v in item.items()}
        rows.append({"TaskId": raw["task_id"], "RoomId": raw.get("room_id"), "RoomIdType": _number(raw.get(
            "room_id_type")), "UserId": raw.get("user_id"), "Status": raw.get("status"),
            "Desired": raw.get("desired"), "CreatedMs": _number(raw.get("created_ms")),
            "EndedMs": _number(raw.get("ended_ms")), "HaCount": _number(raw.get("ha_count")) or 0,
            "LeaveCode": _number(raw.get("leave_code"))})
    return sorted(rows, key=lambda r: (r["CreatedMs"] or 0, r["TaskId"]), reverse=True)[:shown]


def task_view(task: TaskRecord) -> dict[str, Any]:
    """A task as the console shows it: what it was created with, how far it got — no keys."""
    storage = task.params.storage
    where: dict[str, Any] = {"Vod": True} if storage is None else {
        "Vendor": "COS" if storage.vendor == COS else "S3", "Region": storage.region, "Bucket": storage.bucket,
        "Prefix": "/".join(storage.file_name_prefix)}
    return {"TaskId": task.task_id, "SdkAppId": task.sdkappid, "RoomId": task.room_id,
            "RoomIdType": task.room_id_type, "UserId": task.user_id, "Status": task.status, "Desired": task.desired,
            "CreatedMs": task.created_ms, "EndedMs": task.ended_ms, "HaCount": task.ha_count,
            "LeaveCode": task.leave_code, "HeartbeatMs": task.heartbeat_ms or None,
            "RecordParams": task.params.record.model_dump(exclude_none=True, mode="json"),
            "Storage": where, "Directory": task.directory}


def read_report(internal: Bucket, task_id: str) -> dict[str, Any] | None:
    """The task's recording report (chalicelib/recording_report.py); None when it has none or
    it cannot be read."""
    try:
        return recording_report.read(internal, task_id)
    except ValueError:
        log.warning("console: the recording report of a task could not be read")
        return None


@dataclass(frozen=True)
class Console:
    """What the console API reads: the apps, the tasks (store and listing) and the internal bucket."""

    apps: AppRegistry
    tasks: TaskStore
    listing: TaskListing
    internal: Bucket
    places: Callable[[TaskRecord], tuple[console_files.Place, console_files.Place]]  # (its storage, internal)

    def app_list(self) -> dict[str, Any]:
        return {"Apps": [{"SdkAppId": a.sdkappid, "CallbackUrl": a.callback_url, "Qps": a.qps,
                          "MaxConcurrent": a.max_concurrent, "Active": self.tasks.active_count(a.sdkappid),
                          "JanusUrl": a.room.janus_url} for a in self.apps.list_apps()]}

    def task_list(self, sdkappid: int) -> dict[str, Any]:
        if self.apps.get_app(sdkappid) is None:
            raise ConsoleNotFoundError(str(sdkappid))
        tasks, more = self.listing.of_app(sdkappid)
        return {"SdkAppId": sdkappid, "Tasks": tasks, "Truncated": more}

    def _task(self, sdkappid: int, task_id: str) -> TaskRecord:
        task = self.tasks.get(task_id) if task_id else None
        if task is None or task.sdkappid != sdkappid:
            raise ConsoleNotFoundError(task_id)
        return task

    def task_detail(self, sdkappid: int, task_id: str) -> dict[str, Any]:
        task = self._task(sdkappid, task_id)
        return {"Task": task_view(task),
                "Files": console_files.files(task, *self.places(task)),
                "Events": EventLog(self.internal).read(task_id),
                "Report": read_report(self.internal, task_id)}

    def playlist(self, sdkappid: int, task_id: str, name: str, where: str) -> str:
        task = self._task(sdkappid, task_id)
        if not name.endswith(".m3u8"):
            raise ConsoleNotFoundError(name)
        try:
            located = console_files.locate(task, name, where, *self.places(task))
            return console_files.playlist(located)
        except console_files.NotARecordingError:
            raise ConsoleNotFoundError(name) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ConsoleNotFoundError(name) from None
            raise


def path_app_id(text: str) -> int:
    """An SdkAppId from a path; ConsoleNotFoundError for anything else."""
    if not text.isdigit() or len(text) > 10:
        raise ConsoleNotFoundError(text)
    return int(text)


def path_task_id(text: str) -> str:
    """A TaskId from a path: decoded once (API Gateway decodes path parameters, Chalice's local
    server does not; TaskIds hold no "%"), "+" kept."""
    return urllib.parse.unquote(text)


def get_console() -> Console:
    """The console over this deployment's adapters (chalicelib.wiring)."""
    from chalicelib import aws, wiring  # the API side only

    s = aws.settings()
    internal = wiring.internal_bucket()
    return Console(wiring.app_registry(), wiring.task_store(), TaskListing(aws.client("dynamodb"), s.tasks_table),
                   internal, lambda task: (console_files.task_place(task, s, internal),
                                           console_files.internal_place(s, internal)))


def api(authorization: str, source: str, now: float, failure_limit: int, call: Callable[[Console], Any],
        console: Callable[[], Console] = get_console) -> Reply:
    """Answer one console API request: the key first, then `call`; a missing app, task or file
    is 404, storage that cannot be read 502."""
    refused = refusal(authorization, source, now, failure_limit)
    if refused is not None:
        return refused
    try:
        out = call(console())
    except ConsoleNotFoundError:
        return NOT_FOUND
    except (BotoCoreError, ClientError) as exc:
        log.warning("console: storage could not be read: %s", type(exc).__name__)
        return _json(502, {"Error": "StorageUnavailable"})
    if isinstance(out, str):  # a playlist
        return Reply(200, out, "application/vnd.apple.mpegurl", {"Cache-Control": "no-store", **SAFE_HEADERS})
    return _json(200, out)
