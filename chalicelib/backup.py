"""The backup storage: where a task's files wait in the internal bucket while the customer's
storage refuses them, and how they move on to it — segments first, playlists last, so a
playlist never lists a segment the customer's bucket does not hold.

A task's backup is `backup/<TaskId>/<the file's key in the customer's bucket>`. The recorder
keeps files there and moves them itself while it runs (recorder_container/uploader.py); once
the task has ended, `deliver` (a scheduled function) moves what is left, then sends 305
Status 2 and requests the task's output jobs. Files that could not be delivered within
`Settings.backup_keep_s` are deleted, and a last 308 says so.

Besides files, a backup can hold a debt: `<playlist key>.endlist` says that playlist, in the
customer's storage, still needs its ENDLIST (a dead recorder's, which its successor could not
read while the storage was down). It is paid after every file has moved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from chalicelib import events, naming, playlist, post_record, retry
from chalicelib.config import Settings
from chalicelib.events import EventQueue, UploadStatus
from chalicelib.retry import Failure
from chalicelib.storage import BACKUP_PREFIX, Bucket, backup_prefix, task_bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import ENDED

log = logging.getLogger(__name__)

PLAYLIST_EXT = "." + naming.PLAYLIST
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
ENDLIST_OWED = ".endlist"
EXPIRED_CODE = "BackupExpired"


def _stem(key: str) -> str | None:
    name = naming.parse(key.rsplit("/", 1)[-1])
    return None if name is None else key.rsplit("/", 1)[0] + "/" + name.stem


def is_playlist(key: str) -> bool:
    return key.endswith(PLAYLIST_EXT)


def _delivery_order(key: str) -> tuple[int, str]:
    """Segments, then playlists, then the ENDLISTs owed."""
    return (2 if key.endswith(ENDLIST_OWED) else 1 if is_playlist(key) else 0), key


def segments_behind(playlist_key: str, waiting: Iterable[str]) -> bool:
    """Whether a segment of this playlist's stream is among the `waiting` keys."""
    stem = _stem(playlist_key)
    return stem is not None and any(not is_playlist(k) and _stem(k) == stem for k in waiting)


@dataclass
class Backup:
    """One task's files in the backup storage."""

    internal: Bucket
    task_id: str

    @property
    def prefix(self) -> str:
        return backup_prefix(self.task_id)

    def keep(self, key: str, body: bytes, content_type: str) -> None:
        self.internal.put(self.prefix + key, body, content_type)

    def drop(self, key: str) -> None:
        self.internal.delete([self.prefix + key])

    def listing(self) -> dict[str, float]:
        """The customer keys waiting here, with when each was stored (Unix s)."""
        return {key[len(self.prefix):]: at for key, at in self.internal.listing(self.prefix)}

    def owe_endlist(self, playlist_key: str) -> None:
        self.keep(playlist_key + ENDLIST_OWED, b"", "text/plain")

    def pay_endlist(self, owed_key: str, customer: Bucket) -> None:
        """Append ENDLIST to the playlist in the customer's storage, unless it has one."""
        playlist_key = owed_key.removesuffix(ENDLIST_OWED)
        try:
            text = playlist.closed(customer.get(playlist_key).decode())
        except (playlist.PlaylistError, UnicodeDecodeError) as exc:
            log.warning("an open playlist is no playlist (%s); left as it is", exc)
            text = None
        if text is not None:
            customer.put(playlist_key, text.encode(), PLAYLIST_TYPE)
        self.drop(owed_key)

    def move(self, key: str, customer: Bucket) -> None:
        if key.endswith(ENDLIST_OWED):
            self.pay_endlist(key, customer)
            return
        try:
            body, content_type = self.internal.fetch(self.prefix + key)
        except ClientError as exc:
            if retry.error_code(exc) == "NoSuchKey":
                return  # moved meanwhile (by a recorder, or a newer version went straight through)
            raise
        customer.put(key, body, content_type)
        self.drop(key)


@dataclass
class Pass:
    """What one attempt to empty a backup did."""

    moved: list[str] = field(default_factory=list)
    refused: dict[str, BaseException] = field(default_factory=dict)  # the storage said no to these objects
    down: BaseException | None = None  # the storage did not answer: the pass stopped here


def redeliver(backup: Backup, customer: Bucket, waiting: Iterable[str], limit: int | None = None,
              held: frozenset[str] | set[str] = frozenset()) -> Pass:
    """Move waiting files to the customer's storage, segments first. A refused object is skipped
    (one bad key holds up nothing else); a storage that does not answer ends the pass. A playlist
    moves only once no segment of its stream waits (other than refused ones). `held` files wait
    for now (an earlier put of theirs is still on its way)."""
    done = Pass()
    order = sorted(waiting, key=_delivery_order)
    for key in order[:limit]:
        left = [k for k in order if k not in done.moved and k not in done.refused]
        if key in held:
            continue
        if is_playlist(key) and segments_behind(key, left):
            continue
        if key.endswith(ENDLIST_OWED) and key.removesuffix(ENDLIST_OWED) in left:
            continue  # the playlist itself still waits here
        try:
            backup.move(key, customer)
        except Exception as exc:  # botocore, network: told apart below
            if retry.classify(exc) is Failure.TRANSIENT:
                done.down = exc
                break
            done.refused[key] = exc
            continue
        done.moved.append(key)
    return done


@dataclass(frozen=True)
class Delivery:
    moved: int  # files moved on to the customers' storage
    oldest_s: float  # how long the oldest file of an ended task has waited (0: none waits)


def deliver(tasks: TaskStore, internal: Bucket, queue: EventQueue, settings: Settings, now_s: float) -> Delivery:
    """Move the backups of ended tasks to their customers' storage. A task whose recorder still
    runs is its recorder's business."""
    moved, oldest_at = 0, now_s
    for task_id in internal.prefixes(BACKUP_PREFIX):
        try:
            count, waiting_since = _deliver_task(tasks, internal, queue, settings, task_id, now_s)
            moved, oldest_at = moved + count, min(oldest_at, waiting_since)
        except Exception:  # the next run tries again; the other tasks must not wait for this one
            log.exception("a task's backup could not be delivered", extra={"task_id": task_id})
    return Delivery(moved, now_s - oldest_at)


def _deliver_task(tasks: TaskStore, internal: Bucket, queue: EventQueue, settings: Settings, task_id: str,
                  now_s: float) -> tuple[int, float]:
    """How many files moved, and since when the oldest one left waits (`now_s`: none)."""
    backup = Backup(internal, task_id)
    waiting = backup.listing()
    task = tasks.get(task_id)
    if task is not None and task.status != ENDED:
        return 0, now_s
    expired = [key for key, at in waiting.items() if now_s - at > settings.backup_keep_s]
    done = Pass()
    if task is not None:
        done = redeliver(backup, task_bucket(task, settings, internal), [k for k in waiting if k not in expired])
    for key, exc in done.refused.items():
        log.warning("a file in backup was refused (%s)", retry.error_code(exc), extra={"task_id": task_id, "key": key})
    if done.down is not None:
        log.warning("the customer's storage does not answer (%s)", retry.error_code(done.down),
                    extra={"task_id": task_id})
    if expired:
        internal.delete([backup.prefix + key for key in expired])
    now_ms = int(now_s * 1000)
    if task is not None and expired:
        message = f"{len(expired)} files could not be stored within {settings.backup_keep_s / 86400:g} days"
        queue.publish(events.upload_error(EXPIRED_CODE, message, task.ha_count, int(now_s)), task, now_ms)
    if task is not None and len(done.moved) + len(expired) == len(waiting):  # the backup is empty now
        if any(not key.endswith(ENDLIST_OWED) for key in done.moved) and not expired:
            queue.publish(events.upload_stop(UploadStatus.LEFT_FILES_STORED), task, now_ms)
        post_record.request(task, tasks, internal)
        log.info("backup delivered", extra={"task_id": task_id, "files": len(done.moved)})
    left = [at for key, at in waiting.items() if key not in done.moved and key not in expired]
    return len(done.moved), min(left, default=now_s)
