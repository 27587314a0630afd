"""A worker process of a big task: records the publishers the supervisor hands it.

`python -m recorder_container.worker` with CLOUDREC_TASK_ID, CLOUDREC_HA_INDEX and
CLOUDREC_WORKER_SLOT; commands on stdin, reports on stdout, logs on stderr (workers.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import aiohttp

from chalicelib import aws, wiring
from chalicelib.naming import file_safe
from chalicelib.observability import get_logger
from chalicelib.subscription import Selected
from recorder_container import codec_seam
from recorder_container.janus import JanusError, JanusSession
from recorder_container.outputs import TaskOutputs
from recorder_container.recording import RecordingContext, SingleStreamRecording
from recorder_container.room import janus_room

log = logging.getLogger(__name__)


def _report(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main(task_id: str, ha_index: int, slot: int) -> int:
    codec_seam.install()
    settings = aws.settings()
    task = wiring.task_store().get(task_id)
    app = wiring.app_registry().get_app(task.sdkappid) if task else None
    if task is None or app is None:
        log.error("worker %d: task or app unknown", slot)
        return 1
    address = janus_room(task.room_id, task.room_id_type, task.user_id, app.room)
    assert address is not None
    outputs = TaskOutputs(task, ha_index, settings, wiring.task_store(), wiring.event_queue())
    uploader = outputs.uploader()
    uploader.start()
    media = {"seen": False}

    def on_media() -> None:
        if not media["seen"]:
            media["seen"] = True
            _report({"event": "media"})

    record = task.params.record
    recording = SingleStreamRecording(RecordingContext(
        naming=outputs.naming(), record=record, uploader=uploader, address=address,
        ice_servers=app.room.ice_servers, emit=outputs.emit, put_file=outputs.put_file, on_media=on_media,
        segment_s=float(os.environ.get("CLOUDREC_SEGMENT_S", "12")),
        work_dir=settings.run_dir / "work" / file_safe(task_id) / f"w{slot}"))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    janus: JanusSession | None = None
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "stop":
            break
        selected = [Selected(**s) for s in command["selected"]]
        try:
            if janus is None:
                janus = JanusSession(app.room.janus_url, app.room.api_secret, app.room.token)
                await janus.__aenter__()
            await recording.reconcile(janus, selected)
        except (JanusError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("worker %d: janus unavailable (%s)", slot, exc)
            await recording.drop_subscriptions()
            if janus is not None:
                await janus.__aexit__(None, None, None)
            janus = None
    await recording.close()
    await uploader.drain(float(os.environ.get("CLOUDREC_DRAIN_S", "120")))
    await uploader.stop()
    if janus is not None:
        await janus.__aexit__(None, None, None)
    _report({"event": "stopped", "pending": uploader.pending})
    return 0


def main() -> int:
    task_id = os.environ["CLOUDREC_TASK_ID"]
    slot = int(os.environ.get("CLOUDREC_WORKER_SLOT", "1"))
    logger = get_logger("cloudrec-recorder", logging.StreamHandler(sys.stderr))  # stdout is the protocol
    logger.append_keys(task_id=task_id, worker=slot)
    try:
        return asyncio.run(_main(task_id, int(os.environ.get("CLOUDREC_HA_INDEX", "0")), slot))
    except Exception:
        logger.exception("worker failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
