"""Tasks whose recorder is gone: relaunch them (ha1..ha3) or end them.

`recorder_exited` acts as soon as the platform reports a recorder's container stopped
(ECS's task-state event; the local launcher's equivalent). `reap` runs on a schedule (every
minute in AWS; by the event pump of the local stack) and catches what no event reported: a
recorder that hangs, a lost event. The plan is decided in `plan`, a pure function.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from chalicelib import events, post_record
from chalicelib.config import Settings
from chalicelib.dispatch import Starter, hosted_prefix
from chalicelib.errors import ServiceError
from chalicelib.events import EventQueue, LeaveCode
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import ENDED, STOP, TaskRecord

log = logging.getLogger(__name__)

LAUNCH_RETRY_S = 30  # after a launch that failed (capacity, throttling)


@dataclass(frozen=True)
class Decision:
    action: str  # "relaunch" | "end"
    reason: str


def plan(task: TaskRecord, settings: Settings, now_s: float) -> Decision:
    """What to do with a live task whose recorder is gone."""
    if task.desired == STOP:
        return Decision("end", "stop was requested and the recorder is gone")
    if task.ha_count >= settings.max_ha:
        return Decision("end", f"the recorder failed {task.ha_count + 1} times")
    if task.usersig_expires_s <= now_s:
        return Decision("end", "the robot's UserSig has expired, so it cannot re-enter the room")
    return Decision("relaunch", "the recorder stopped heartbeating")


def reap(tasks: TaskStore, launcher: Starter, queue: EventQueue, settings: Settings, now_s: float,
         internal: Bucket | None = None) -> int:
    """Handle every expired task once; how many were handled. One task that cannot be handled
    now (its recorder will not start, the store stumbles) is logged and left for the next sweep."""
    now_ms = int(now_s * 1000)
    handled = 0
    for task_id in tasks.expired_live(now_ms):
        try:
            handled += _reap_one(tasks, launcher, queue, settings, task_id, now_ms, internal)
        except Exception:  # the next sweep tries again; the other tasks must not wait for this one
            log.exception("a task could not be handled", extra={"task_id": task_id})
    return handled


def recorder_exited(tasks: TaskStore, launcher: Starter, queue: EventQueue, settings: Settings, task_id: str,
                    handle: str, reason: str, now_s: float, internal: Bucket | None = None) -> int:
    """A recorder's container stopped: if it was the task's current recorder and the task is
    still live, relaunch or end the task now, without waiting for its lease to run out."""
    task = tasks.get(task_id)
    if task is None or task.status == ENDED or task.launch_handle != handle:
        return 0  # ended normally, or an earlier recorder of a task that has moved on
    log.warning("the task's recorder stopped: %s", reason, extra={"task_id": task_id, "ha_count": task.ha_count})
    return _take_over(tasks, launcher, queue, settings, task, int(now_s * 1000), internal)


def worker_exited(tasks: TaskStore, launcher: Starter, queue: EventQueue, settings: Settings, worker_id: str,
                  reason: str, now_s: float, internal: Bucket | None = None) -> int:
    """A warm worker stopped: every live task it hosted goes on elsewhere now (each one that
    is still on it: `recorder_exited` reads the task again, consistently)."""
    prefix = hosted_prefix(worker_id)
    handled = 0
    for task_id, handle in tasks.hosted_by(worker_id).items():
        if not handle.startswith(prefix):
            continue  # moved on to the fallback's recorder since
        try:
            handled += recorder_exited(tasks, launcher, queue, settings, task_id, handle,
                                       f"its worker stopped: {reason}", now_s, internal)
        except Exception:  # the lease runs out and the sweep takes it over then
            log.exception("a task of a stopped worker could not be handed on", extra={"task_id": task_id})
    return handled


def _reap_one(tasks: TaskStore, launcher: Starter, queue: EventQueue, settings: Settings, task_id: str,
              now_ms: int, internal: Bucket | None) -> int:
    task = tasks.get(task_id)
    if task is None or task.status == ENDED or task.lease_expires_ms >= now_ms:
        return 0
    log.warning("recorder lease expired", extra={"task_id": task_id, "ha_count": task.ha_count})
    return _take_over(tasks, launcher, queue, settings, task, now_ms, internal)


def _take_over(tasks: TaskStore, launcher: Starter, queue: EventQueue, settings: Settings, task: TaskRecord,
               now_ms: int, internal: Bucket | None) -> int:
    """Relaunch or end a live task whose recorder is gone (the store's conditions make this
    safe to race: only one of the sweep and the exit event acts on the same lease)."""
    task_id = task.task_id
    decision = plan(task, settings, now_ms / 1000)
    log.warning("%s: %s", decision.action, decision.reason, extra={"task_id": task_id, "ha_count": task.ha_count})
    if decision.action == "relaunch":
        grace_ms = int(settings.launch_grace_s * 1000)
        if not tasks.relaunch(task, now_ms, grace_ms):
            return 0
        if task.launch_handle:
            launcher.stop(task.launch_handle)
        try:
            launcher.start(task, task.ha_count + 1)
        except ServiceError as exc:  # no capacity, throttled: not the recorder's failure, so no HA attempt
            claimed = dataclasses.replace(task, lease_expires_ms=now_ms + grace_ms)
            tasks.relaunch(claimed, now_ms, int(LAUNCH_RETRY_S * 1000), step=-1)
            log.error("the recorder could not be started (%s); trying again in %d s", exc.message, LAUNCH_RETRY_S,
                      extra={"task_id": task_id})
        return 1
    code = LeaveCode(task.leave_code) if task.leave_code is not None else LeaveCode.SERVER_KICK
    if tasks.finish(task_id, now_ms, leave_code=code) and not task.stop_reported:
        queue.publish(events.recorder_stop(code), task, now_ms)
        ended = tasks.get(task_id)
        if ended is not None and internal is not None:
            post_record.request(ended, tasks, internal)
    return 1
