"""Task records for tests that need one without going through Create."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from chalicelib import wiring
from chalicelib.models import RecordParams
from chalicelib.tasks import StorageKeys, StorageTarget, TaskParams, TaskRecord


def params(record: dict[str, Any] | None = None, bucket: str = "customer",
           prefix: tuple[str, ...] = ()) -> TaskParams:
    """Parameters of a task that stores to an S3 `bucket` (RecordMode 1 unless `record` says)."""
    return TaskParams(RecordParams.model_validate({"RecordMode": 1, **(record or {})}),
                      StorageTarget(1, "us-east-1", bucket, prefix))


LIVE_FOR_GOOD = 4_102_444_800_000  # a lease that runs until 2100: the reaper leaves the task alone


def task_record(task_id: str = "T", **fields: Any) -> TaskRecord:
    """A stored-looking task; `fields` overrides any TaskRecord field."""
    base = TaskRecord(task_id=task_id, sdkappid=1400000001, room_id="8848", room_id_type=1, user_id="robot",
                      params=params(), params_hash="h", created_ms=0, api_expires_ms=0, usersig_expires_s=0,
                      storage_keys=StorageKeys("ak", "sk"))
    return dataclasses.replace(base, **fields)


def admitted(task_id: str, bucket: str, **record: Any) -> TaskRecord:
    """A task as the API admits it (in the task store), storing to `bucket` under "rec/",
    with a live lease."""
    now_ms = int(time.time() * 1000)
    task = task_record(task_id, params=params({"MaxIdleTime": 300, **record}, bucket, ("rec",)), created_ms=now_ms,
                       api_expires_ms=now_ms + 10**7, usersig_expires_s=int(time.time()) + 10**6,
                       lease_expires_ms=now_ms + 30_000)
    wiring.task_store().admit(task, None, None, 10)
    return task
