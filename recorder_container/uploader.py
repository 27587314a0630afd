"""Uploads finished segments and updated playlists to the customer's storage, in order.

A failed upload is retried with backoff for as long as the recorder runs and, once it is
stopping, until the drain deadline; nothing is dropped silently: what cannot be uploaded
stays in the work directory and is reported (308 on failure, 305 Status 1 at the end).
Only the newest version of a playlist waiting in the queue is uploaded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib import retry
from chalicelib.retry import RetryPolicy
from chalicelib.storage import Bucket

log = logging.getLogger(__name__)

UPLOAD_RETRY = RetryPolicy(delays_s=(1, 2, 4, 8, 15, 30))  # no limit: the drain deadline ends it


@dataclass
class Upload:
    key: str
    content_type: str
    path: Path | None = None  # a segment file (deleted once stored)
    body: bytes | None = None  # a playlist text
    on_done: Callable[[], None] | None = None


def _chained(callbacks: list[Callable[[], None] | None]) -> Callable[[], None] | None:
    """One callback that runs the given ones in order (None when there are none)."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def run_all() -> None:
        for callback in present:
            callback()

    return run_all


class Uploader:
    """One worker, so a playlist never reaches storage before its segments. Owned by the event
    loop; each upload itself runs on a worker thread."""

    def __init__(self, bucket: Bucket, on_error: Callable[[str, str], None], on_first: Callable[[], None],
                 policy: RetryPolicy = UPLOAD_RETRY) -> None:
        self._bucket = bucket
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
        self.failed_keys: set[str] = set()
        self.uploaded = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="uploader")

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
        return len(self._queue)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is stored; False if some of it still is not."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _put_object(self, upload: Upload) -> None:
        body = upload.body if upload.body is not None else upload.path.read_bytes()  # type: ignore[union-attr]
        self._bucket.put(upload.key, body, upload.content_type)

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            upload = self._queue[0]
            if not self._started:
                self._started = True
                self._on_first()
            self._sending = upload
            try:
                await asyncio.to_thread(self._put_object, upload)
            except Exception as exc:  # botocore, network, credentials: all retried while recording
                code = retry.error_code(exc)
                if failures == 0:
                    log.warning("upload of %s failed (%s, %s); retrying", upload.key.rsplit("/", 1)[-1], code,
                                retry.classify(exc).value)
                    self._on_error(code, "upload to the customer's storage failed; retrying")
                self.failed_keys.add(upload.key)
                failures += 1
                self._sending = None
                await asyncio.sleep(self._policy.delay(failures) or 0.0)
                continue
            self._sending = None
            failures = 0
            self.failed_keys.discard(upload.key)
            if self._queue and self._queue[0] is upload:
                self._queue.pop(0)
            self.uploaded += 1
            if upload.path is not None:
                upload.path.unlink(missing_ok=True)
            if upload.on_done is not None:
                upload.on_done()
