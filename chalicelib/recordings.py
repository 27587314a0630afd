"""The four actions of the Cloud Recording API as domain operations.

Each takes the caller's app and a validated request, and returns the response fields.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from chalicelib.apps import App
from chalicelib.config import Settings
from chalicelib.dispatch import Starter
from chalicelib.errors import ServiceError, TaskNotFoundError
from chalicelib.events import LeaveCode
from chalicelib.models import (
    CreateCloudRecordingRequest,
    DeleteCloudRecordingRequest,
    DescribeCloudRecordingRequest,
    ModifyCloudRecordingRequest,
    TaskRef,
    check_layout_fits,
)
from chalicelib.task_store import AdmissionRaceError, TaskStore, robot_key
from chalicelib.tasks import ENDED, RUN, TaskParams, TaskRecord, TaskView
from chalicelib.usersig import verify_usersig

log = logging.getLogger(__name__)

IDEMPOTENT_RETRY_MS = 60_000
ADMISSION_ATTEMPTS = 5


@dataclass(frozen=True)
class Recordings:
    """What the actions act on: the task store, the recorders' starter and the clock."""

    tasks: TaskStore
    launcher: Starter
    settings: Settings
    clock: Callable[[], float]

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


def new_task_id() -> str:
    """An opaque, unique TaskId shaped like TRTC's: base64 with / → - and = → ."""
    return base64.b64encode(secrets.token_bytes(32)).decode().replace("/", "-").replace("=", ".")


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    raise TypeError(f"cannot store {type(value).__name__}")


def _params_hash(req: CreateCloudRecordingRequest) -> str:
    data = req.model_dump(exclude_none=True)
    return hashlib.sha256(json.dumps(data, default=_reveal, sort_keys=True).encode()).hexdigest()


def create(rec: Recordings, app: App, req: CreateCloudRecordingRequest) -> str:
    """Admit a task (limits, robot slot) and launch its recorder; return the TaskId."""
    usersig_expires = verify_usersig(req.UserSig.get_secret_value(), req.SdkAppId, app.usersig_key,
                                     req.UserId, rec.clock())
    params, keys = TaskParams.of_request(req)
    params_hash = _params_hash(req)
    for _ in range(ADMISSION_ATTEMPTS):
        now_ms = rec.now_ms()
        task = TaskRecord(
            task_id=new_task_id(), sdkappid=req.SdkAppId, room_id=req.RoomId, room_id_type=req.RoomIdType,
            user_id=req.UserId, params=params, storage_keys=keys, params_hash=params_hash, created_ms=now_ms,
            api_expires_ms=now_ms + req.ResourceExpiredHour * 3_600_000, usersig_expires_s=usersig_expires,
            subscription=req.RecordParams.SubscribeStreamUserIds, layout=req.MixLayoutParams,
            lease_expires_ms=now_ms + int(rec.settings.launch_grace_s * 1000),
            event_key=secrets.token_urlsafe(32),
        )
        try:
            admitted = _admit(rec, app, task)
        except AdmissionRaceError:
            continue
        if admitted != task.task_id:
            return admitted
        break
    else:
        raise ServiceError("Too many concurrent Create calls for this robot UserId; retry.")
    try:
        rec.launcher.start(task, 0)
    except ServiceError:
        rec.tasks.finish(task.task_id, rec.now_ms())
        raise
    return task.task_id


def _admit(rec: Recordings, app: App, task: TaskRecord) -> str:
    """Store the task, taking its robot's slot in the room: the TaskId of the task that holds it
    now — the first one, when this is an identical Create retried within a minute."""
    slot = rec.tasks.robot_slot(robot_key(task))
    kick = None
    if slot is not None:
        earlier = rec.tasks.get(slot.task_id)
        if earlier is not None and earlier.status != ENDED and earlier.desired == RUN:
            if slot.params_hash == task.params_hash and task.created_ms - slot.created_ms < IDEMPOTENT_RETRY_MS:
                log.info("identical Create retried: returning the first task", extra={"task_id": earlier.task_id})
                return earlier.task_id
            kick = earlier
    rec.tasks.admit(task, slot, kick, app.max_concurrent)
    if kick is not None:
        log.info("robot UserId re-entered the room: stopping the earlier task",
                 extra={"task_id": task.task_id, "kicked_task_id": kick.task_id})
    return task.task_id


def _visible(rec: Recordings, ref: TaskRef, task: TaskRecord | TaskView | None) -> None:
    if task is None or task.sdkappid != ref.SdkAppId:
        raise TaskNotFoundError(f"The task {ref.TaskId} does not exist for SdkAppId {ref.SdkAppId}.")
    if task.status == ENDED:
        raise TaskNotFoundError(f"The task {ref.TaskId} has ended.")
    if rec.now_ms() > task.api_expires_ms:
        raise TaskNotFoundError(
            f"The task {ref.TaskId} is past its ResourceExpiredHour window; the API no longer "
            "reaches it (the recording itself goes on until it stops)."
        )


def _visible_view(rec: Recordings, ref: TaskRef) -> TaskView:
    task = rec.tasks.get_view(ref.TaskId)
    _visible(rec, ref, task)
    assert task is not None
    return task


def describe(rec: Recordings, req: DescribeCloudRecordingRequest) -> dict[str, Any]:
    task = _visible_view(rec, req)
    files = [] if task.to_vod else [vars(f) for f in task.storage_files()]
    out: dict[str, Any] = {"TaskId": task.task_id, "Status": task.status, "StorageFileList": files}
    if req.RecorderKey is not None:
        out["RecorderKey"] = req.RecorderKey
    return out


def modify(rec: Recordings, req: ModifyCloudRecordingRequest) -> dict[str, Any]:
    task = rec.tasks.get(req.TaskId)
    _visible(rec, req, task)
    assert task is not None
    layout = req.MixLayoutParams
    if layout is not None and task.params.mixed:
        check_layout_fits(layout, task.params.canvas())
    sub = req.SubscribeStreamUserIds
    if sub is None and layout is None:
        return {"TaskId": task.task_id}
    changed = rec.tasks.update_config(task.task_id, subscription=sub, layout=layout)
    if not changed:
        raise TaskNotFoundError(f"The task {task.task_id} is exiting; it can no longer be modified.")
    return {"TaskId": task.task_id}


def delete(rec: Recordings, req: DeleteCloudRecordingRequest) -> dict[str, Any]:
    task = _visible_view(rec, req)
    if not rec.tasks.request_stop(task.task_id, leave_code=LeaveCode.API_STOP):
        raise TaskNotFoundError(f"The task {task.task_id} has ended.")
    return {"TaskId": task.task_id}
