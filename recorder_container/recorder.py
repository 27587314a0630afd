"""The recorder of one task: holds the task's lease, keeps the robot in the room, follows
what the API asks (Delete, Modify) and ends the task when it is done.

Control arrives through the task store: the recorder re-reads the task every second and
extends its lease every heartbeat. Losing the lease means another recorder owns the task
now; this one then leaves without ending it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from chalicelib.apps import App
from chalicelib.config import Settings
from chalicelib.events import FAILOVER, LEAVE_IDLE, RECORDER_START, RECORDER_STOP, EventQueue, build_event
from chalicelib.models import RecordParams
from chalicelib.task_store import STOP, TaskRecord, TaskStore
from recorder_container.janus import JanusError, JanusSession
from recorder_container.room import RobotPresence, RoomAddress, janus_room

log = logging.getLogger(__name__)

POLL_S = 1.0
JOIN_RETRY_S = 2.0
LEAVE_SIGNAL = 3  # 302 LeaveCode when the service itself stops the recorder (SIGTERM)


class IdleClock:
    """Counts how long the room has had no anchor; a present anchor resets it (seed:
    an anchor who is present but not sending does not start the countdown)."""

    def __init__(self, max_idle_s: float, now: float) -> None:
        self._max = max_idle_s
        self._empty_since: float | None = now

    def observe(self, anchors_present: bool, now: float) -> None:
        if anchors_present:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = now

    def expired(self, now: float) -> bool:
        return self._empty_since is not None and now - self._empty_since >= self._max


@dataclass
class Recorder:
    """Runs one task to its end (or until its lease is lost)."""

    task_id: str
    ha_index: int
    settings: Settings
    store: TaskStore
    app_for: Callable[[int], App | None]
    events: EventQueue
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop_signal = asyncio.Event()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): finish, leave, end the task."""
        self._stop_signal.set()

    def _emit(self, task: TaskRecord, event_type: int, payload: dict[str, object], key: str) -> None:
        try:
            self.events.publish(build_event(event_type, task, payload, self.now_ms()), task.sdkappid,
                                f"{key}-ha{self.ha_index}")
        except Exception:  # an event that cannot be queued must not stop the recording
            log.exception("event %s could not be queued", event_type)

    async def run(self) -> int:
        lease_ms = int(self.settings.lease_s * 1000)
        task = self.store.acquire_lease(self.task_id, self.owner, self.now_ms(), lease_ms)
        if task is None:
            log.warning("task has ended or another recorder holds its lease; exiting")
            return 0
        app = self.app_for(task.sdkappid)
        if app is None:
            log.error("the task's app is not registered; ending the task")
            self.store.finish(self.task_id, self.now_ms(), leave_code=LEAVE_SIGNAL, owner=self.owner)
            return 1
        self._emit(task, RECORDER_START, {"Status": 0}, "301")
        if self.ha_index > 0:
            self._emit(task, FAILOVER, {"Status": 0}, "306")
        leave_code = await self._attend(task, app, lease_ms)
        if leave_code is None:
            log.warning("lease lost: another recorder owns the task now")
            return 0
        final = self.store.get(self.task_id) or task
        self._emit(final, RECORDER_STOP, {"LeaveCode": leave_code}, "302")
        self.store.finish(self.task_id, self.now_ms(), leave_code=leave_code, owner=self.owner)
        log.info("task ended", extra={"leave_code": leave_code})
        return 0

    async def _attend(self, task: TaskRecord, app: App, lease_ms: int) -> int | None:
        """Stay in the room until the task should stop; return the LeaveCode, or None if
        the lease was lost."""
        params = RecordParams.model_validate(json.loads(task.params_json)["RecordParams"])
        address = janus_room(task.room_id, task.room_id_type, task.user_id, app.room)
        if address is None:
            log.error("this Janus has no string_ids: string room %r cannot be recorded", task.room_id)
        idle = IdleClock(params.MaxIdleTime, self.clock())
        janus: JanusSession | None = None
        presence: RobotPresence | None = None
        next_heartbeat = next_join = 0.0
        try:
            while True:
                now = self.clock()
                if now >= next_heartbeat:
                    current = await asyncio.to_thread(self.store.heartbeat, self.task_id, self.owner,
                                                      self.now_ms(), lease_ms)
                    if current is None:
                        return None
                    next_heartbeat = now + self.settings.heartbeat_s
                else:
                    current = await asyncio.to_thread(self.store.get, self.task_id)
                    if current is None:
                        return None
                if self._stop_signal.is_set():
                    return LEAVE_SIGNAL
                if current.desired == STOP:
                    return current.leave_code if current.leave_code is not None else 0
                anchors_present = False
                try:
                    if address is not None and now >= next_join and (presence is None or not presence.joined):
                        next_join = now + JOIN_RETRY_S
                        if presence is None:
                            janus, presence = await self._connect(app, address)
                        if presence is not None:
                            await presence.try_join()
                    if presence is not None:
                        anchors_present = bool(await presence.anchors())
                except (TimeoutError, JanusError, aiohttp.ClientError) as exc:
                    log.warning("janus unavailable (%s); reconnecting", exc)
                    await self._close(janus, None)
                    janus, presence = None, None
                idle.observe(anchors_present, now)
                if idle.expired(now):
                    log.info("no anchor for MaxIdleTime (%s s): stopping", params.MaxIdleTime)
                    return LEAVE_IDLE
                try:
                    await asyncio.wait_for(self._stop_signal.wait(), POLL_S)
                except TimeoutError:
                    pass
        finally:
            await self._close(janus, presence)

    async def _connect(self, app: App, address: RoomAddress) -> tuple[JanusSession | None, RobotPresence | None]:
        janus = JanusSession(app.room.janus_url, app.room.api_secret, app.room.token)
        try:
            await janus.__aenter__()
        except (TimeoutError, JanusError, aiohttp.ClientError, OSError) as exc:
            log.warning("cannot reach Janus: %s", type(exc).__name__)
            return None, None
        return janus, RobotPresence(janus, address)

    @staticmethod
    async def _close(janus: JanusSession | None, presence: RobotPresence | None) -> None:
        if presence is not None:
            try:
                await presence.leave()
            except Exception:
                log.warning("leaving the room failed", exc_info=True)
        if janus is not None:
            await janus.__aexit__(None, None, None)
