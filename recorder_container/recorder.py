"""The recorder of one task: holds the task's lease, keeps the robot in the room, records
what the task subscribes to, follows what the API asks (Delete, Modify) and ends the task
when it is done.

Control arrives through the task store: the recorder re-reads the task every second and
extends its lease every heartbeat. Losing the lease means another recorder owns the task
now; this one then leaves without ending it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from chalicelib import aws, events, post_record
from chalicelib.apps import App
from chalicelib.config import Settings
from chalicelib.events import Event, EventQueue, LeaveCode, UploadStatus
from chalicelib.models import RecordParams
from chalicelib.naming import file_safe
from chalicelib.storage import Bucket
from chalicelib.subscription import select
from chalicelib.task_store import TaskStore
from chalicelib.tasks import STOP, TaskRecord
from recorder_container import codec_seam
from recorder_container.janus import JanusError, JanusSession
from recorder_container.mixed_recording import MixedRecording
from recorder_container.outputs import TaskOutputs
from recorder_container.recording import RecordingContext, SingleStreamRecording
from recorder_container.room import RobotPresence, RoomAddress, janus_room
from recorder_container.uploader import Uploader
from recorder_container.workers import IN_PROCESS, WorkerProcess, plan_slots

log = logging.getLogger(__name__)

POLL_S = 1.0
JOIN_RETRY_S = 2.0
RECONCILE_S = 5.0  # re-check subscriptions this often even without room events
PRESENCE_S = 2.0  # how often the room's participants are listed (for MaxIdleTime)


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
class _Room:
    """The Janus session and the robot's presence, while connected."""

    janus: JanusSession
    presence: RobotPresence
    next_reconcile: float = 0.0
    config_version: int = -1


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
    segment_s: float = field(default_factory=lambda: float(os.environ.get("CLOUDREC_SEGMENT_S", "12")))
    drain_s: float = field(default_factory=lambda: float(os.environ.get("CLOUDREC_DRAIN_S", "120")))
    streams_per_process: int = field(default_factory=lambda: int(os.environ.get("CLOUDREC_STREAMS_PER_PROCESS",
                                                                                 "16")))
    max_processes: int = field(default_factory=lambda: int(os.environ.get("CLOUDREC_MAX_PROCESSES", "4")))

    def __post_init__(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop_signal = asyncio.Event()
        self._outputs: TaskOutputs | None = None
        self._marked_recording = False
        self._workers: dict[int, WorkerProcess] = {}
        self._slots: dict[str, int] = {}
        self._lease_keeper: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): finish, upload, leave, end the task."""
        self._stop_signal.set()

    def _emit(self, event: Event) -> None:
        assert self._outputs is not None
        self._outputs.emit(event)

    async def run(self) -> int:
        lease_ms = int(self.settings.lease_s * 1000)
        task = self.store.acquire_lease(self.task_id, self.owner, self.now_ms(), lease_ms)
        if task is None:
            log.warning("task has ended or another recorder holds its lease; exiting")
            return 0
        self._outputs = TaskOutputs(task, self.ha_index, self.settings, self.store, self.events, self.clock)
        app = self.app_for(task.sdkappid)
        if app is None:
            log.error("the task's app is not registered; ending the task")
            self.store.finish(self.task_id, self.now_ms(), leave_code=LeaveCode.SERVER_KICK, owner=self.owner)
            return 1
        self._emit(events.recorder_start(self.ha_index))
        if self.ha_index > 0:
            self._emit(events.failover(self.ha_index))
        uploader = self._outputs.uploader()
        uploader.start()
        leave_code = await self._attend(task, app, lease_ms, uploader)
        if leave_code is None:
            log.warning("lease lost: another recorder owns the task now")
            if self._lease_keeper is not None:
                self._lease_keeper.cancel()
            await uploader.drain(self.drain_s)
            await uploader.stop()
            return 0
        self._outputs.task = self.store.get(self.task_id) or task
        self._emit(events.recorder_stop(leave_code))
        try:
            await uploader.drain(self.drain_s)
        finally:
            if self._lease_keeper is not None:
                self._lease_keeper.cancel()
        await uploader.stop()
        pending = uploader.pending + sum(w.pending for w in self._workers.values())
        if self._marked_recording:
            self._emit(events.upload_stop(UploadStatus.FILES_LEFT if pending else UploadStatus.ALL_STORED))
        if pending:
            log.error("%d uploads still pending; their files stay in the work directory", pending)
        self.store.finish(self.task_id, self.now_ms(), leave_code=leave_code, owner=self.owner)
        log.info("task ended", extra={"leave_code": leave_code})
        self._request_outputs()
        return 0

    def _request_outputs(self) -> None:
        """Hand the stored HLS over to the MP4/AAC/VOD jobs the task asked for."""
        ended = self.store.get(self.task_id)
        if ended is None:
            return
        try:
            internal = Bucket(self.settings.internal_bucket, lambda: aws.client("s3"))
            jobs = post_record.request(ended, self.store, internal)
        except Exception:  # the HLS is stored; only the follow-up files are missing
            log.exception("the output jobs could not be requested")
            return
        if jobs:
            log.info("output jobs requested", extra={"jobs": jobs})

    async def _keep_lease(self, lease_ms: int) -> None:
        """Heartbeat while the last uploads drain, so the task is not taken for dead."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if await asyncio.to_thread(self.store.heartbeat, self.task_id, self.owner, self.now_ms(), lease_ms) is None:
                return

    def _on_media(self) -> None:
        if not self._marked_recording:
            self._marked_recording = True
            asyncio.ensure_future(asyncio.to_thread(self.store.mark_recording, self.task_id))

    async def _attend(self, task: TaskRecord, app: App, lease_ms: int, uploader: Uploader) -> LeaveCode | None:
        """Stay in the room and record until the task should stop; return the LeaveCode, or
        None if the lease was lost."""
        record = task.params.record
        address = janus_room(task.room_id, task.room_id_type, task.user_id, app.room)
        if address is None:
            log.error("this Janus has no string_ids: string room %r cannot be recorded", task.room_id)
        idle = IdleClock(record.MaxIdleTime, self.clock())
        recording: SingleStreamRecording | MixedRecording | None = None
        outputs = self._outputs
        assert outputs is not None
        if address is not None:
            ctx = RecordingContext(
                naming=outputs.naming(), record=record, uploader=uploader, address=address,
                ice_servers=app.room.ice_servers, emit=outputs.emit, put_file=outputs.put_file,
                on_media=self._on_media, segment_s=self.segment_s,
                work_dir=self.settings.run_dir / "work" / file_safe(self.task_id),
            )
            if record.RecordMode == 1:
                codec_seam.install()  # remux: H.264 is never decoded (a mixed task decodes it)
                recording = SingleStreamRecording(ctx)
            else:
                recording = MixedRecording(ctx, task.params.transcode, self.settings.allow_private_urls)
        room: _Room | None = None
        next_heartbeat = next_join = next_presence = 0.0
        last_anchors = False
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
                    return LeaveCode.SERVER_KICK
                if current.desired == STOP:
                    return LeaveCode(current.leave_code) if current.leave_code is not None else LeaveCode.API_STOP
                anchors_present = False
                try:
                    if address is not None and now >= next_join and (room is None or not room.presence.joined):
                        next_join = now + JOIN_RETRY_S
                        if room is None:
                            room = await self._connect(app, address)
                        if room is not None:
                            await room.presence.try_join()
                    if room is not None and room.presence.joined:
                        if recording is not None:
                            await self._follow(room, recording, record, current, now)
                        if now >= next_presence:  # the idle countdown needs no finer grain
                            next_presence = now + PRESENCE_S
                            anchors_present = bool(await room.presence.anchors())
                        else:
                            anchors_present = last_anchors
                        last_anchors = anchors_present
                except (JanusError, aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("janus unavailable (%s); reconnecting", exc)
                    if recording is not None:
                        await recording.drop_subscriptions()
                    await self._close(room)
                    room = None
                idle.observe(anchors_present, now)
                if idle.expired(now):
                    log.info("no anchor for MaxIdleTime (%s s): stopping", record.MaxIdleTime)
                    return LeaveCode.IDLE
                try:
                    await asyncio.wait_for(self._stop_signal.wait(), POLL_S)
                except TimeoutError:
                    pass
        finally:
            # closing files, workers and uploads may outlast the lease: keep heartbeating
            self._lease_keeper = asyncio.create_task(self._keep_lease(lease_ms))
            if recording is not None:
                try:
                    await recording.close()
                except Exception:
                    log.exception("closing the recording failed")
            await asyncio.gather(*(w.stop(self.drain_s + 30) for w in self._workers.values()))
            await self._close(room)

    async def _follow(self, room: _Room, recording: SingleStreamRecording | MixedRecording, record: RecordParams,
                      current: TaskRecord, now: float) -> None:
        """Keep the subscriptions in line with the room's publishers and the task's rules,
        spreading publishers over worker processes beyond the per-process budget."""
        changed = room.presence.take_events()
        if not (changed or current.config_version != room.config_version or now >= room.next_reconcile):
            return
        room.config_version = current.config_version
        room.next_reconcile = now + RECONCILE_S
        publishers = list(room.presence.publishers.values())
        selected = select(publishers, record, current.subscription)
        if isinstance(recording, MixedRecording):  # one picture: decoded in this process
            await recording.reconcile(room.janus, publishers, selected, current.layout)
            return
        per_user: dict[str, int] = {}
        for sel in selected:
            per_user[sel.user_id] = per_user.get(sel.user_id, 0) + 1
        self._slots = plan_slots(per_user, self._slots, self.streams_per_process, self.max_processes)
        await recording.reconcile(room.janus, [s for s in selected if self._slots[s.user_id] == IN_PROCESS])
        for slot in sorted(set(self._slots.values()) | set(self._workers)):
            if slot == IN_PROCESS:
                continue
            worker = self._workers.get(slot)
            if worker is None:
                worker = self._workers[slot] = WorkerProcess(slot, self._on_media)
                await worker.start()
            await worker.reconcile([s for s in selected if self._slots[s.user_id] == slot])

    async def _connect(self, app: App, address: RoomAddress) -> _Room | None:
        janus = JanusSession(app.room.janus_url, app.room.api_secret, app.room.token)
        try:
            await janus.__aenter__()
        except (JanusError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("cannot reach Janus: %s", type(exc).__name__)
            return None
        return _Room(janus, RobotPresence(janus, address))

    @staticmethod
    async def _close(room: _Room | None) -> None:
        if room is None:
            return
        try:
            await room.presence.leave()
        except Exception:
            log.warning("leaving the room failed", exc_info=True)
        await room.janus.__aexit__(None, None, None)

