"""What a recording process writes besides media: events, Describe's file list, the
uploader to the task's storage and the task's file names — shared by the supervisor and
its worker processes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import aws
from chalicelib.config import Settings
from chalicelib.events import UPLOAD_ERROR, UPLOAD_START, EventQueue, build_event
from chalicelib.models import StorageParams
from chalicelib.naming import TaskNaming
from chalicelib.storage import storage_client
from chalicelib.task_store import StorageFile, TaskRecord, TaskStore
from recorder_container.uploader import Uploader

log = logging.getLogger(__name__)


@dataclass
class TaskOutputs:
    task: TaskRecord
    ha_index: int
    settings: Settings
    store: TaskStore
    events: EventQueue
    clock: Callable[[], float] = time.time

    def emit(self, event_type: int, payload: dict[str, Any], key: str) -> None:
        """Queue an event once (the key deduplicates it across processes and retries)."""
        try:
            self.events.publish(build_event(event_type, self.task, payload, int(self.clock() * 1000)),
                                self.task.sdkappid, f"{key}-ha{self.ha_index}")
        except Exception:  # an event that cannot be queued must not stop the recording
            log.exception("event %s could not be queued", event_type)

    def put_file(self, file: StorageFile) -> None:
        """List an index file for Describe (from the event loop, off it)."""
        asyncio.ensure_future(asyncio.to_thread(self.store.put_file, self.task.task_id, file))

    def naming(self) -> TaskNaming:
        storage = json.loads(self.task.params_json)["StorageParams"]
        prefix = tuple(storage.get("CloudStorage", {}).get("FileNamePrefix") or ())
        return TaskNaming(self.task.task_id, self.task.sdkappid, self.task.room_id, self.task.room_id_type,
                          prefix, self.ha_index)

    def uploader(self) -> Uploader:
        storage = StorageParams.model_validate(json.loads(self.task.params_json)["StorageParams"])
        if storage.CloudStorage is not None:
            target = storage.CloudStorage
            bucket, factory = target.Bucket, (lambda: storage_client(target, self.settings))
        else:  # VOD tasks: HLS goes to the internal bucket, the VOD commit comes after
            bucket, factory = self.settings.internal_bucket, (lambda: aws.client("s3"))
        return Uploader(factory, bucket,
                        on_error=lambda code, msg: self.emit(UPLOAD_ERROR, {"Code": code, "Message": msg},
                                                             f"308-{int(self.clock())}"),
                        on_first=lambda: self.emit(UPLOAD_START, {"Status": 0}, "303"))
