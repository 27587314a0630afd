"""Spreading a big task over several processes: one Python process tops out near 8 × 720p30
participants, so beyond a per-process budget of streams, whole publishers (all their streams,
so a user's files stay in one writer) go to worker processes. The supervisor keeps the
lease, the room presence and the decisions; each worker subscribes and writes its share.

Protocol: JSON lines. Supervisor → worker on stdin: {"cmd": "reconcile", "selected": [...]},
{"cmd": "stop"}. Worker → supervisor on stdout: {"event": "media"}, {"event": "stopped",
"pending": n}. A worker whose stdin closes (the supervisor died) stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from chalicelib.subscription import Selected

log = logging.getLogger(__name__)

IN_PROCESS = 0


def plan_slots(streams_per_user: Mapping[str, int], current: Mapping[str, int], per_slot: int,
               max_slots: int) -> dict[str, int]:
    """Which slot (0 = the supervisor itself, 1.. = workers) records each user. Users keep
    their slot; a new user goes to the lowest slot with room, else to the least loaded."""
    plan = {user: slot for user, slot in current.items() if user in streams_per_user}
    load = dict.fromkeys(range(max_slots), 0)
    for user, slot in plan.items():
        load[slot] += streams_per_user[user]
    for user, count in streams_per_user.items():
        if user in plan:
            continue
        fits = [s for s in range(max_slots) if load[s] + count <= per_slot]
        slot = fits[0] if fits else min(load, key=lambda s: (load[s], s))
        plan[user] = slot
        load[slot] += count
    return plan


class WorkerProcess:
    """A worker process and its command pipe (supervisor side)."""

    def __init__(self, slot: int, on_media: Callable[[], None]) -> None:
        self.slot = slot
        self._on_media = on_media
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.pending = 0

    async def start(self) -> None:
        env = {**os.environ, "CLOUDREC_WORKER_SLOT": str(self.slot)}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder_container.worker", env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())
        log.info("worker %d started (pid %d)", self.slot, self._proc.pid)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            message = json.loads(line)
            if message.get("event") == "media":
                self._on_media()
            elif message.get("event") == "stopped":
                self.pending = int(message.get("pending", 0))
                self._stopped.set()
        self._stopped.set()

    async def send(self, command: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self._proc.stdin.drain()

    async def reconcile(self, selected: list[Selected]) -> None:
        await self.send({"cmd": "reconcile", "selected": [asdict(s) for s in selected]})

    async def stop(self, timeout: float) -> None:
        """Ask the worker to finish its files and uploads, and wait for it to exit."""
        if self._proc is None:
            return
        try:
            await self.send({"cmd": "stop"})
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except (ConnectionError, TimeoutError):
            log.error("worker %d did not stop in time; terminating it", self.slot)
            self._proc.terminate()
        await self._proc.wait()
