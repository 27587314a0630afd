"""Entry point: `python -m recorder_container` with CLOUDREC_TASK_ID (and CLOUDREC_HA_INDEX):
the recorder of one task, built from its settings (recorder_container/settings.py)."""

from __future__ import annotations

import asyncio
import signal
import sys

from recorder_container import composition
from recorder_container.recorder import Recorder
from recorder_container.settings import RecorderSettings


async def record(settings: RecorderSettings) -> int:
    deps = composition.build(settings)
    recorder = Recorder(settings=settings, store=deps.store, app_for=deps.apps.get_room_view, queue=deps.queue,
                        internal=deps.internal, open_room=composition.open_room)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, recorder.request_stop)
    return await recorder.run()


if __name__ == "__main__":
    sys.exit(composition.run_process("recorder", record))
