"""What a recording process writes besides media: events, Describe's file list, the
uploader to the task's storage and the task's file names — shared by the task's recorder and
its shard processes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import events
from chalicelib.backup import Backup
from chalicelib.config import Settings
from chalicelib.events import Event, EventQueue
from chalicelib.naming import TaskNaming
from chalicelib.storage import Bucket, task_bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import StorageFile, TaskRecord
from recorder_container.background import Background
from recorder_container.outbox import Outbox
from recorder_container.uploader import Uploader

log = logging.getLogger(__name__)


@dataclass
class TaskOutputs:
    """A recording process's outputs other than media. Owned by the event loop."""

    task: TaskRecord
    ha_index: int
    settings: Settings
    store: TaskStore
    queue: EventQueue
    internal: Bucket
    background: Background
    clock: Callable[[], float] = time.time
    _outbox: Outbox | None = None

    def emit(self, event: Event) -> None:
        """Queue an event, in order, off the event loop (its dedup key keeps it once-only across
        processes and retries)."""
        if self._outbox is None:
            self._outbox = Outbox(self.queue, self.task)
        self._outbox.put(event, int(self.clock() * 1000))

    async def flush_events(self, timeout: float) -> int:
        """Wait until the events emitted so far are queued; how many could not be."""
        return await self._outbox.flush(timeout) if self._outbox is not None else 0

    def put_file(self, file: StorageFile) -> None:
        """List an index file for Describe (the store is written off the loop)."""
        self.background.spawn(asyncio.to_thread(self.store.put_file, self.task.task_id, file),
                              f"listing {file.FileName}")

    def naming(self) -> TaskNaming:
        return self.task.naming(self.ha_index)

    def bucket(self) -> Bucket:
        """The task's storage (the customer's bucket, or the internal one for VOD tasks)."""
        return task_bucket(self.task, self.settings, self.internal)

    def uploader(self) -> Uploader:
        stored_inside = self.task.params.storage is None or self.task.storage_keys is None  # VOD: no backup
        return Uploader(self.bucket(), backup=None if stored_inside else Backup(self.internal, self.task.task_id),
                        on_error=lambda code, msg: self.emit(events.upload_error(code, msg, self.ha_index,
                                                                                 int(self.clock()))),
                        on_first=lambda: self.emit(events.upload_start(self.ha_index)))
