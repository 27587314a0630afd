"""Tasks whose recorder stopped heartbeating: relaunch them (ha1..ha3) or end them.

Run on a schedule (every minute in AWS; by the event pump of the local stack). The plan
is decided in `plan`, a pure function; `reap` carries it out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chalicelib import events, post_record
from chalicelib.config import Settings
from chalicelib.events import EventQueue, LeaveCode
from chalicelib.launcher import Launcher
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import ENDED, STOP, TaskRecord

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Decision:
    action: str  # "relaunch" | "end"
    reason: str


def plan(task: TaskRecord, settings: Settings, now_s: float) -> Decision:
    """What to do with a live task whose lease has run out."""
    if task.desired == STOP:
        return Decision("end", "stop was requested and the recorder is gone")
    if task.ha_count >= settings.max_ha:
        return Decision("end", f"the recorder failed {task.ha_count + 1} times")
    if task.usersig_expires_s <= now_s:
        return Decision("end", "the robot's UserSig has expired, so it cannot re-enter the room")
    return Decision("relaunch", "the recorder stopped heartbeating")


def reap(tasks: TaskStore, launcher: Launcher, queue: EventQueue, settings: Settings, now_s: float,
         internal: Bucket | None = None) -> int:
    """Handle every expired task once; return how many were handled."""
    now_ms = int(now_s * 1000)
    handled = 0
    for task_id in tasks.expired_live(now_ms):
        task = tasks.get(task_id)
        if task is None or task.status == ENDED or task.lease_expires_ms >= now_ms:
            continue
        decision = plan(task, settings, now_s)
        log.warning("recorder lease expired: %s (%s)", decision.action, decision.reason,
                    extra={"task_id": task_id, "ha_count": task.ha_count})
        if decision.action == "relaunch":
            if not tasks.relaunch(task, now_ms, int(settings.launch_grace_s * 1000)):
                continue
            if task.launch_handle:
                launcher.stop(task.launch_handle)
            tasks.set_launch(task_id, launcher.launch(task_id, task.ha_count + 1))
        else:
            code = LeaveCode(task.leave_code) if task.leave_code is not None else LeaveCode.SERVER_KICK
            if tasks.finish(task_id, now_ms, leave_code=code):
                queue.publish(events.recorder_stop(code), task, now_ms)
                ended = tasks.get(task_id)
                if ended is not None and internal is not None:
                    post_record.request(ended, tasks, internal)
        handled += 1
    return handled
