"""The recorder of one task: holds the task's lease, keeps the robot in the room, records
what the task subscribes to, follows what the API asks (Delete, Modify) and ends the task
when it is done.

Control arrives through the task store: the recorder re-reads the task every pass of its
loop and extends its lease every heartbeat. Losing the lease means another recorder owns the
task now; this one then leaves without ending it. What to do in each pass is decided by
`control.Control` (no IO); this module carries it out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from chalicelib import events, post_record, retry
from chalicelib.apps import App
from chalicelib.events import EventQueue, LeaveCode, UploadStatus
from chalicelib.models import MixLayoutParams
from chalicelib.storage import Bucket
from chalicelib.subscription import Publisher, Selected, select
from chalicelib.task_store import TaskStore
from chalicelib.tasks import TaskRecord
from recorder_container import health
from recorder_container.background import Background
from recorder_container.control import Control, Seen, Step
from recorder_container.hls_stream import RecordingContext
from recorder_container.mixed_recording import MixedRecording
from recorder_container.outputs import TaskOutputs
from recorder_container.predecessors import EndPlaylists
from recorder_container.recording import SingleStreamRecording
from recorder_container.room import Room, RoomUnavailableError
from recorder_container.settings import RecorderSettings
from recorder_container.shards import IN_PROCESS, ShardProcess, plan_shards
from recorder_container.stream_report import INTERVAL_S, PartHeader, ReportWriter, StreamReport
from recorder_container.uploader import Uploader

log = logging.getLogger(__name__)

T = TypeVar("T")
STORE_RETRY = retry.RetryPolicy(delays_s=(0.5, 1.0, 2.0, 4.0), attempts=6)
RoomOpener = Callable[[TaskRecord, App], Room | None]  # None: the app's room backend cannot host this room


class Recording(Protocol):
    """What the recorder asks of a single-stream or mixed recording."""

    async def reconcile(self, publishers: Sequence[Publisher], selected: Sequence[Selected],
                        layout: MixLayoutParams | None = None) -> None: ...

    async def drop_subscriptions(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Recorder:
    """Runs one task to its end (or until its lease is lost). Owned by the event loop."""

    settings: RecorderSettings
    store: TaskStore
    app_for: Callable[[int], App | None]
    queue: EventQueue
    internal: Bucket
    open_room: RoomOpener
    clock: Callable[[], float] = time.time
    background: Background = field(default_factory=Background)
    report_interval_s: float = INTERVAL_S

    def __post_init__(self) -> None:
        self.task_id = self.settings.task_id
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop_signal = asyncio.Event()
        self._outputs: TaskOutputs | None = None
        self._marked_recording = False
        self._shards: dict[int, ShardProcess] = {}
        self._plan: dict[str, int] = {}  # user → the shard that records them
        self._lease_keeper: asyncio.Task[None] | None = None
        self._started = self._refused = False  # 301 Status 0 / Status 1 sent
        self._alive = health.alive_file(self.settings)  # touched on every turn: the health check reads it
        self.report = StreamReport()  # this recorder's part of the task's recording report
        self._report_writer: ReportWriter | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def request_stop(self) -> None:
        """The platform stops this recorder (SIGTERM): finish the files, upload them, leave the
        room and hand the task over to a successor. Only Delete and MaxIdleTime end a task."""
        self._stop_signal.set()

    async def run(self) -> int:
        try:
            return await self._run()
        finally:  # the last events (302, 305) are on their way
            if self._report_writer is not None:
                await self._report_writer.finish()
            if self._outputs is not None:
                await self._outputs.flush_events(self.settings.drain_s)

    async def _run(self) -> int:
        lease_ms = int(self.settings.service.lease_s * 1000)
        task = self.store.acquire_lease(self.task_id, self.owner, self.now_ms(), lease_ms)
        if task is None:
            log.warning("task has ended or another recorder holds its lease; exiting")
            return 0
        outputs = self._outputs = TaskOutputs(task, self.settings.ha_index, self.settings.service, self.store,
                                              self.queue, self.internal, self.background, self.clock)
        app = self.app_for(task.sdkappid)
        if app is None:
            log.error("the task's app is not registered; ending the task")
            self.store.finish(self.task_id, self.now_ms(), leave_code=LeaveCode.SERVER_KICK, owner=self.owner)
            return 1
        report = self._report_writer = ReportWriter(self.report, self.internal, PartHeader(
            task.task_id, task.sdkappid, task.room_id, self.settings.ha_index), self.clock, self.report_interval_s)
        report.start()
        uploader = outputs.uploader()
        uploader.start(adopt=True)
        ending = EndPlaylists(task, self.settings.ha_index, uploader)
        ending_task = asyncio.create_task(ending.run()) if self.settings.ha_index > 0 else None
        if self.settings.ha_index > 0:
            outputs.emit(events.failover(self.settings.ha_index))
        final = await self._attend(task, app, lease_ms, uploader)
        await report.finish(task_ended=final.leave is not None)
        if ending_task is not None and not ending_task.done():
            ending_task.cancel()
            await ending.owe_rest()
        if final.lease_lost:
            log.warning("lease lost: another recorder owns the task now")
        elif final.handover:
            log.info("stopped by the platform: finishing the files, then handing the task over")
        else:
            assert final.leave is not None
            # noted first: should this recorder die while it drains, the reaper ends the task
            # (no relaunch after MaxIdleTime) without a second 302
            await self._stored(self.store.leaving, self.task_id, self.owner, final.leave)
            outputs.emit(events.recorder_stop(final.leave))
        pending = await self._drain(uploader)
        if final.lease_lost:
            return 0
        if final.handover:
            if await self._stored(self.store.release, self.task_id, self.owner, self.now_ms()):
                log.info("task handed over: its next recorder starts at the next sweep")
            return 0
        if self._marked_recording:
            outputs.emit(events.upload_stop(UploadStatus.FILES_LEFT if pending else UploadStatus.ALL_STORED))
        if pending:
            log.warning("%d files are not in the customer's storage yet (in the backup, or here)", pending)
        assert final.leave is not None
        await self._stored(self.store.finish, self.task_id, self.now_ms(), final.leave, self.owner)
        log.info("task ended", extra={"leave_code": int(final.leave)})
        self._request_outputs()
        return 0

    async def _drain(self, uploader: Uploader) -> int:
        """Store what is still queued (keeping the lease meanwhile); how many files are not in
        the customer's storage (in the backup, or stored nowhere)."""
        try:
            await uploader.drain(self.settings.drain_s)
            await self.background.wait(self.settings.drain_s)  # Describe's file list is complete
        finally:
            if self._lease_keeper is not None:
                self._lease_keeper.cancel()
        await uploader.stop()
        if uploader.pending:
            log.error("%d files are stored nowhere; they stay in the work directory", uploader.pending)
        return uploader.pending + uploader.in_backup + sum(s.pending for s in self._shards.values())

    async def _stored(self, call: Callable[..., T], *args: Any) -> T | None:
        """A task-store call off the loop, tried again through a hiccup; None if it never worked."""
        try:
            return await asyncio.to_thread(retry.call, functools.partial(call, *args), STORE_RETRY)
        except Exception as exc:  # botocore, network: the lease runs out and the reaper takes over
            log.error("the task store did not answer (%s)", retry.error_code(exc))
            return None

    def _request_outputs(self) -> None:
        """Hand the stored HLS over to the MP4/AAC/VOD jobs the task asked for."""
        try:
            ended = self.store.get(self.task_id)
            jobs = post_record.request(ended, self.store, self.internal) if ended is not None else 0
        except Exception:  # the HLS is stored; only the follow-up files are missing
            log.exception("the output jobs could not be requested")
            return
        if jobs:
            log.info("output jobs requested", extra={"jobs": jobs})

    async def _keep_lease(self, lease_ms: int) -> None:
        """Heartbeat while the last uploads drain, so the task is not taken for dead."""
        while True:
            await asyncio.sleep(self.settings.service.heartbeat_s)
            health.beat(self._alive)
            try:
                if await self._read_task(True, lease_ms) is None:
                    return
            except Exception as exc:  # a store hiccup: the next beat may get through
                log.warning("heartbeat failed (%s)", retry.error_code(exc))

    def _on_media(self) -> None:
        if not self._marked_recording:
            self._marked_recording = True
            self.background.spawn(asyncio.to_thread(self.store.mark_recording, self.task_id), "marking InProgress")

    def _recording(self, task: TaskRecord, room: Room, uploader: Uploader) -> Recording:
        assert self._outputs is not None
        ctx = RecordingContext(
            naming=self._outputs.naming(), record=task.params.record, room=room, uploader=uploader,
            emit=self._outputs.emit, put_file=self._outputs.put_file, on_media=self._on_media,
            background=self.background, work_dir=self.settings.work_dir, segment_s=self.settings.segment_s)
        if task.params.mixed:
            return MixedRecording(ctx, task.params.transcode, self.settings.service.allow_private_urls,
                                  self.settings.mix_preset, self.report)
        return SingleStreamRecording(ctx, self.report)

    async def _read_task(self, heartbeat: bool, lease_ms: int) -> TaskRecord | None:
        if heartbeat:
            return await asyncio.to_thread(self.store.heartbeat, self.task_id, self.owner, self.now_ms(), lease_ms)
        return await asyncio.to_thread(self.store.get, self.task_id)

    async def _attend(self, task: TaskRecord, app: App, lease_ms: int, uploader: Uploader) -> Step:
        """Stay in the room and record until this recorder's part is over; the last step says
        why (the task ends, is handed over, or another recorder owns it)."""
        room = self.open_room(task, app)
        if room is None:
            log.error("the app's room backend cannot host room %r (a string room needs string_ids)", task.room_id)
        recording = self._recording(task, room, uploader) if room is not None else None
        control = Control(self.settings.service.heartbeat_s, task.params.record.MaxIdleTime, self.clock())
        anchors: bool | None = None
        known, reachable = task, True
        try:
            while True:
                now = self.clock()
                health.beat(self._alive)
                try:
                    current = await self._read_task(control.heartbeat_due(now), lease_ms)
                    reachable = True
                except Exception as exc:  # a store hiccup must not stop the recording: go on as last known
                    if reachable:
                        log.warning("the task store is unreachable (%s); recording on", retry.error_code(exc))
                    current, reachable = known, False
                known = current or known
                joined = room is not None and room.joined
                step = control.decide(Seen(now, current, self._stop_signal.is_set(), joined,
                                           room.publishers() if room is not None and joined else (), anchors))
                if step.lease_lost or step.handover or step.leave is not None:
                    if step.leave == LeaveCode.IDLE:
                        log.info("no anchor for MaxIdleTime (%s s): stopping", task.params.record.MaxIdleTime)
                    return step
                assert current is not None
                anchors = None
                if room is not None and recording is not None:
                    anchors = await self._act(step, control, room, recording, current)
                try:
                    await asyncio.wait_for(self._stop_signal.wait(), self.settings.poll_s)
                except TimeoutError:
                    pass
        finally:
            # closing files, shards and uploads may outlast the lease: keep heartbeating
            self._lease_keeper = asyncio.create_task(self._keep_lease(lease_ms))
            if recording is not None:
                try:
                    await recording.close()
                except Exception:
                    log.exception("closing the recording failed")
            await asyncio.gather(*(s.stop(self.settings.drain_s + 30) for s in self._shards.values()))
            if room is not None:
                await room.leave()

    async def _act(self, step: Step, control: Control, room: Room, recording: Recording,
                   task: TaskRecord) -> bool | None:
        """Carry out a step in the room; the presence poll's answer, when one ran."""
        try:
            joined = step.join and await room.join()
            if step.join:
                self._report_start(joined, room.id_taken)
            if joined:
                publishers = room.publishers()
                await self._follow(recording, task, publishers)
                control.joined(publishers, task.config_version, self.clock())
            elif step.follow:
                await self._follow(recording, task, room.publishers())
            if step.poll_presence:
                return await room.anchors_present()
        except RoomUnavailableError as exc:
            log.warning("the room is unavailable (%s); joining again", exc)
            await recording.drop_subscriptions()
            await room.leave()
        return None

    def _report_start(self, joined: bool, id_taken: bool) -> None:
        """301 once the robot is in the room (the recorder started); 301 Status 1 once if its id
        is held by someone it cannot remove (it keeps trying, and a 301 Status 0 follows)."""
        assert self._outputs is not None
        if joined and not self._started:
            self._started = True
            self._outputs.emit(events.recorder_start(self.settings.ha_index))
        elif id_taken and not self._refused:
            self._refused = True
            log.error("the robot's UserId is held by a participant in the room that it cannot remove")
            self._outputs.emit(events.recorder_start(self.settings.ha_index, started=False))

    async def _follow(self, recording: Recording, task: TaskRecord, publishers: tuple[Publisher, ...]) -> None:
        """Keep the subscriptions in line with the room's publishers and the task's rules,
        spreading publishers over shard processes beyond the per-process budget."""
        selected = select(publishers, task.params.record, task.subscription)
        if task.params.mixed:  # one picture: decoded in this process
            await recording.reconcile(publishers, selected, task.layout)
            return
        per_user: dict[str, int] = {}
        for sel in selected:
            per_user[sel.user_id] = per_user.get(sel.user_id, 0) + 1
        self._plan = plan_shards(per_user, self._plan, self.settings.streams_per_process, self.settings.max_processes)
        await recording.reconcile(publishers, [s for s in selected if self._plan[s.user_id] == IN_PROCESS])
        for shard in sorted(set(self._plan.values()) | set(self._shards)):
            if shard == IN_PROCESS:
                continue
            process = self._shards.get(shard)
            if process is None:
                process = self._shards[shard] = ShardProcess(shard, self.settings.env_of_shard(shard), self._on_media)
                await process.start()
            await process.reconcile([s for s in selected if self._plan[s.user_id] == shard])
