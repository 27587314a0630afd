"""Uploads finished segments and updated playlists to the customer's storage, in order, with
the internal bucket as backup (chalicelib/backup.py).

Each file goes to the customer's storage first. When that fails it goes to the backup at once:
nothing waits on a storage that is down, and nothing stays only on this disk. Between uploads,
the same worker moves what is in the backup on to the customer's storage, segments first and
playlists last, as soon as the storage takes it again. A storage that does not answer (a
transient failure) is not tried for every new file: they go straight to the backup until a
move gets through. A storage that refuses one object (a key too long, AccessDenied) refuses
that one alone: the next file is tried as usual. A playlist never reaches the customer's
storage before its segments.

Only if the backup fails too does a file wait here, retried until the drain deadline; what
never got stored anywhere stays in the work directory and is reported (305 Status 1). Only
the newest version of a playlist waiting in the queue is uploaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib import retry
from chalicelib.backup import Backup, Pass, redeliver, segments_behind
from chalicelib.retry import Failure, RetryPolicy
from chalicelib.storage import Bucket

log = logging.getLogger(__name__)

UPLOAD_RETRY = RetryPolicy(delays_s=(1, 2, 4, 8, 15, 30))  # no limit: the drain deadline ends it
UPLOAD_PATIENCE_S = 5.0  # a put not answered by then: the file goes to the backup, the storage counts as down
MOVES_PER_PASS = 20  # files moved from the backup between two uploads, so new files do not wait long


@dataclass
class Upload:
    key: str
    content_type: str
    path: Path | None = None  # a segment file (deleted once stored)
    body: bytes | None = None  # a playlist text
    on_done: Callable[[], None] | None = None


@dataclass(frozen=True)
class _Stored:
    backed_up: bool  # in the backup, not (yet) in the customer's storage
    error: BaseException | None = None  # why the customer's storage did not take it


def _chained(callbacks: list[Callable[[], None] | None]) -> Callable[[], None] | None:
    """One callback that runs the given ones in order (None when there are none)."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def run_all() -> None:
        for callback in present:
            callback()

    return run_all


def _message(error: BaseException) -> str:
    """The storage's own words for a failure (308's Message)."""
    cause = retry.unwrapped(error)
    response = getattr(cause, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Message"):
        return str(response["Error"]["Message"])
    return f"the storage did not answer ({type(cause).__name__})"


class Uploader:
    """One worker, so a playlist never reaches storage before its segments. Owned by the event
    loop; each upload itself runs on a worker thread. `backup` is None when the task's storage
    is the internal bucket itself (VOD tasks)."""

    def __init__(self, bucket: Bucket, on_error: Callable[[str, str], None], on_first: Callable[[], None],
                 policy: RetryPolicy = UPLOAD_RETRY, backup: Backup | None = None,
                 patience_s: float = UPLOAD_PATIENCE_S) -> None:
        self._bucket = bucket
        self._patience_s = patience_s
        self._in_flight: dict[str, asyncio.Future[None]] = {}  # puts given up on that have not ended
        self._backup = backup
        self._policy = policy
        self._on_error = on_error
        self._on_first = on_first
        self._queue: list[Upload] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._sending: Upload | None = None  # the upload on its way now
        self._in_backup: set[str] = set()  # keys whose newest version waits in the backup
        self._refused: set[str] = set()  # of those, the ones the storage refused at the last try
        self._down = False  # the customer's storage did not answer: new files go to the backup
        self._reported: str | None = None  # the error code of the last 308 (one per kind of trouble)
        self._passes_failed = 0
        self._next_pass = 0.0
        self.failed_keys: set[str] = set()
        self.uploaded = 0

    def start(self, adopt: bool = False) -> None:
        """Start the worker; with `adopt`, also deliver what earlier recorders of the task left
        in the backup."""
        self._task = asyncio.create_task(self._run(adopt), name="uploader")

    def put(self, upload: Upload) -> None:
        if upload.body is not None:  # a newer playlist replaces one still waiting, callbacks included
            replaced = [u for u in self._queue if u.key == upload.key and u is not self._sending]
            if replaced:
                gone = {id(u) for u in replaced}
                self._queue = [u for u in self._queue if id(u) not in gone]
                upload = dataclasses.replace(upload, on_done=_chained([u.on_done for u in [*replaced, upload]]))
        self._queue.append(upload)
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Files stored nowhere yet (only in the work directory)."""
        return len(self._queue)

    @property
    def in_backup(self) -> int:
        """Files in the backup storage, not yet in the customer's."""
        return len(self._in_backup)

    def read(self, key: str) -> bytes:
        """A file's newest stored version: from the backup while it waits there (runs on a thread)."""
        if self._backup is not None and key in self._in_backup:
            return self._backup.internal.get(self._backup.prefix + key)
        return self._bucket.get(key)

    def owe_endlists(self, playlist_keys: list[str]) -> None:
        """Leave a debt in the backup: these playlists need their ENDLIST once the storage is back
        (runs on a thread)."""
        if self._backup is None:
            raise RuntimeError("no backup storage for this task")
        for key in playlist_keys:
            self._backup.owe_endlist(key)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is stored (in the customer's storage or the backup),
        then, unless the storage is down, try once more to move the backup on; False if some
        file is stored nowhere yet."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        if self._in_backup and not self._down:  # a storage that does not answer is left to the scheduled delivery
            self._next_pass = 0.0
            self._wake.set()
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                pass
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- the worker ---------------------------------------------------------------------

    async def _run(self, adopt: bool) -> None:
        if adopt and self._backup is not None:
            try:
                self._in_backup = set(await asyncio.to_thread(self._backup.listing))
            except Exception as exc:  # the scheduled delivery takes them once the task has ended
                log.warning("the backup could not be listed (%s)", retry.error_code(exc))
            if self._in_backup:  # their storage failed lately: new files go to the backup until a move gets through
                log.info("%d files of earlier recorders wait in the backup", len(self._in_backup))
                self._down = True
                self._next_pass = time.monotonic() + (self._policy.delay(1) or 0.0)
        failures, moved_last = 0, False
        while True:
            # passes over the backup and new files take turns: a long backlog delays no new file for long
            if self._in_backup and time.monotonic() >= self._next_pass and not (self._queue and moved_last):
                await self._move_backup()
                moved_last = True
                continue
            moved_last = False
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                wait = self._next_pass - time.monotonic() if self._in_backup else None
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            upload = self._queue[0]
            if not self._started:
                self._started = True
                self._on_first()
            self._sending = upload
            try:
                stored = await self._store(upload)
            except Exception as exc:  # neither storage took it: it waits here and is tried again
                failures += 1
                self._sending = None
                if failures == 1:
                    log.error("%s is stored nowhere yet (%s); retrying", upload.key.rsplit("/", 1)[-1],
                              retry.error_code(exc))
                self.failed_keys.add(upload.key)
                await asyncio.sleep(self._policy.delay(failures) or 0.0)
                continue
            failures = 0
            self._sending = None
            self.failed_keys.discard(upload.key)
            if self._queue and self._queue[0] is upload:
                self._queue.pop(0)
            self._note(upload.key, stored)
            self.uploaded += 1
            if upload.path is not None:
                upload.path.unlink(missing_ok=True)
            if upload.on_done is not None:
                upload.on_done()

    async def _store(self, upload: Upload) -> _Stored:
        """Store one file: in the customer's storage, else in the backup. A storage that has not
        answered within `patience_s` counts as down; its put goes on unwatched ("in flight")."""
        body = upload.body if upload.body is not None else await asyncio.to_thread(upload.path.read_bytes)  # type: ignore[union-attr]
        put = functools.partial(self._bucket.put, upload.key, body, upload.content_type)
        if self._backup is None:
            await asyncio.to_thread(put)
            return _Stored(backed_up=False)
        error: BaseException | None = None
        if not self._down and upload.key not in self._in_flight and not (
                upload.body is not None and segments_behind(upload.key, self._in_backup - self._refused)):
            sending = asyncio.ensure_future(asyncio.to_thread(put))
            try:
                await asyncio.wait_for(asyncio.shield(sending), self._patience_s)
                if upload.key in self._in_backup:  # an older version waits there: it is stale now
                    await asyncio.to_thread(self._backup.drop, upload.key)
                return _Stored(backed_up=False)
            except TimeoutError:
                self._in_flight[upload.key] = sending
                sending.add_done_callback(functools.partial(self._landed, upload.key))
                error = TimeoutError(f"no answer within {self._patience_s:g} s")
            except Exception as exc:  # botocore, network: the backup takes it
                error = exc
        await asyncio.to_thread(self._backup.keep, upload.key, body, upload.content_type)
        return _Stored(backed_up=True, error=error)

    def _landed(self, key: str, sending: asyncio.Future[None]) -> None:
        """A put given up on has ended; its file is in the backup either way."""
        self._in_flight.pop(key, None)
        if not sending.cancelled() and sending.exception() is None:
            log.info("a late upload of %s went through", key.rsplit("/", 1)[-1])

    def _note(self, key: str, stored: _Stored) -> None:
        """Keep track of where a file went, and report trouble with the customer's storage."""
        if not stored.backed_up:
            self._in_backup.discard(key)
            self._refused.discard(key)
            self._storage_answered()
            return
        if not self._in_backup:
            self._next_pass = time.monotonic() + (self._policy.delay(1) or 0.0)
        self._in_backup.add(key)
        if stored.error is not None:
            if retry.classify(stored.error) is Failure.TRANSIENT:
                self._down = True
            else:
                self._refused.add(key)
            self._report(stored.error, key)

    def _report(self, error: BaseException, key: str) -> None:
        code = retry.error_code(error)
        if code == self._reported:
            return
        self._reported = code
        kind = retry.classify(error).value
        log.warning("the customer's storage did not take %s (%s, %s): kept in backup", key.rsplit("/", 1)[-1], code,
                    kind)
        self._on_error(code, _message(error))

    def _storage_answered(self) -> None:
        self._down = False
        self._reported = None

    async def _move_backup(self) -> None:
        assert self._backup is not None
        try:
            done = await asyncio.to_thread(redeliver, self._backup, self._bucket, set(self._in_backup),
                                           MOVES_PER_PASS, set(self._in_flight))
        except Exception as exc:  # the backup itself stumbled: try again later
            done = Pass(down=exc)
        self._in_backup.difference_update(done.moved)
        self._refused = set(done.refused)
        if done.moved:
            self._storage_answered()
            log.info("moved %d files from the backup to the customer's storage", len(done.moved))
        if done.down is not None:
            self._down = True
            self._report(done.down, "the backup")
        progress = bool(done.moved) and done.down is None
        self._passes_failed = 0 if progress else self._passes_failed + 1
        self._next_pass = time.monotonic() + (0.0 if progress else self._policy.delay(self._passes_failed) or 0.0)
        if not self._queue and (not self._in_backup or not progress):
            self._idle.set()  # a drain waits for one more try, not for the storage to come back
