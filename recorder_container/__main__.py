"""Entry point: `python -m recorder_container` with CLOUDREC_TASK_ID (and CLOUDREC_HA_INDEX)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from chalicelib import aws, wiring
from chalicelib.observability import get_logger
from recorder_container.recorder import Recorder


async def _main(task_id: str, ha_index: int) -> int:
    recorder = Recorder(
        task_id=task_id,
        ha_index=ha_index,
        settings=aws.settings(),
        store=wiring.task_store(),
        app_for=wiring.app_registry().get_app,
        events=wiring.event_queue(),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, recorder.request_stop)
    return await recorder.run()


def main() -> int:
    task_id = os.environ.get("CLOUDREC_TASK_ID", "")
    if not task_id:
        print("recorder_container: CLOUDREC_TASK_ID is not set", file=sys.stderr)
        return 2
    logger = get_logger("cloudrec-recorder")
    logger.append_keys(task_id=task_id)
    try:
        return asyncio.run(_main(task_id, int(os.environ.get("CLOUDREC_HA_INDEX", "0"))))
    except Exception:
        logger.exception("recorder failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
