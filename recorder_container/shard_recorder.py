"""A shard process of a big task: records the publishers its task's recorder hands it.

`python -m recorder_container.shard_recorder` with CLOUDREC_TASK_ID, CLOUDREC_HA_INDEX and
CLOUDREC_SHARD; commands on stdin, reports on stdout, logs on stderr (see shards.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from recorder_container import composition
from recorder_container.background import Background
from recorder_container.hls_stream import RecordingContext
from recorder_container.outputs import TaskOutputs
from recorder_container.recording import SingleStreamRecording
from recorder_container.room import RoomUnavailableError
from recorder_container.settings import RecorderSettings
from recorder_container.shards import Command, Report
from recorder_container.stream_report import PartHeader, ReportWriter, StreamReport

log = logging.getLogger(__name__)


def _report(report: Report) -> None:
    sys.stdout.write(report.line())
    sys.stdout.flush()


async def record_shard(settings: RecorderSettings) -> int:
    deps = composition.build(settings)
    task = deps.store.get(settings.task_id)
    app = deps.apps.get_room_view(task.sdkappid) if task else None
    room = composition.open_room(task, app) if task and app else None
    if task is None or room is None:
        log.error("shard %d: task, app or room unknown", settings.shard)
        return 1
    background = Background()
    outputs = TaskOutputs(task, settings.ha_index, settings.service, deps.store, deps.queue, deps.internal,
                          background)
    uploader = outputs.uploader()
    uploader.start()
    media_seen = False

    def on_media() -> None:
        nonlocal media_seen
        if not media_seen:
            media_seen = True
            _report(Report("media"))

    report_writer = ReportWriter(StreamReport(), deps.internal, PartHeader(
        task.task_id, task.sdkappid, task.room_id, settings.ha_index, settings.shard))
    report_writer.start()
    recording = SingleStreamRecording(RecordingContext(
        naming=outputs.naming(), record=task.params.record, room=room, uploader=uploader, emit=outputs.emit,
        put_file=outputs.put_file, on_media=on_media, background=background, work_dir=settings.work_dir,
        segment_s=settings.segment_s), report_writer.report)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = Command.parse(line)
        if command.stop:
            break
        try:
            await recording.reconcile((), command.selected)
        except RoomUnavailableError as exc:
            log.warning("shard %d: the room is unavailable (%s)", settings.shard, exc)
            await recording.drop_subscriptions()
            await room.leave()
    await recording.close()
    await report_writer.finish()
    await uploader.drain(settings.drain_s)
    await background.wait(settings.drain_s)
    await uploader.stop()
    await room.leave()
    await outputs.flush_events(settings.drain_s)
    _report(Report("stopped", uploader.pending + uploader.in_backup))
    return 0


if __name__ == "__main__":
    sys.exit(composition.run_process("shard", record_shard, logging.StreamHandler(sys.stderr)))  # stdout: the pipe
