"""Entry point: `python -m recorder_container` with CLOUDREC_TASK_ID (and CLOUDREC_HA_INDEX):
the recorder of one task, built from its settings (recorder_container/settings.py)."""

from __future__ import annotations

import asyncio
import signal
import sys

from chalicelib.observability import get_logger
from recorder_container import composition
from recorder_container.recorder import Recorder
from recorder_container.settings import RecorderSettings, SettingsError


async def _main(settings: RecorderSettings) -> int:
    deps = composition.build(settings)
    recorder = Recorder(settings=settings, store=deps.store, app_for=deps.apps.get_app, queue=deps.queue,
                        internal=deps.internal, open_room=composition.open_room)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, recorder.request_stop)
    return await recorder.run()


def main() -> int:
    try:
        settings = RecorderSettings.from_env()
    except SettingsError as exc:
        print(f"recorder_container: {exc}", file=sys.stderr)
        return 2
    logger = get_logger("cloudrec-recorder")
    logger.append_keys(task_id=settings.task_id)
    try:
        return asyncio.run(_main(settings))
    except Exception:
        logger.exception("recorder failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
