"""Spreading a big task over several processes: one Python process tops out near 8 × 720p30
participants, so beyond a per-process budget of streams, whole publishers (all their streams,
so a user's files stay in one writer) go to shard processes. The task's recorder keeps the
lease, the room presence and the decisions; each shard subscribes and writes its share
(`shard_recorder`).

The pipe between them carries JSON lines. Recorder → shard on stdin: a reconcile (the
streams the shard records now) or a stop. Shard → recorder on stdout: "media" once its first
frame arrived, "stopped" with the uploads it could not finish. A shard whose stdin closes
(its recorder died) stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.subscription import Selected

log = logging.getLogger(__name__)

IN_PROCESS = 0  # the task's recorder itself; shards are 1, 2, …


def plan_shards(streams_per_user: Mapping[str, int], current: Mapping[str, int], per_shard: int,
                max_shards: int) -> dict[str, int]:
    """Which shard (0 = the recorder itself, 1… = shard processes) records each user. Users keep
    their shard; a new user goes to the lowest shard with room, else to the least loaded."""
    plan = {user: shard for user, shard in current.items() if user in streams_per_user}
    load = dict.fromkeys(range(max_shards), 0)
    for user, shard in plan.items():
        load[shard] += streams_per_user[user]
    for user, count in streams_per_user.items():
        if user in plan:
            continue
        fits = [s for s in range(max_shards) if load[s] + count <= per_shard]
        shard = fits[0] if fits else min(load, key=lambda s: (load[s], s))
        plan[user] = shard
        load[shard] += count
    return plan


# -- the pipe: one format, both directions -------------------------------------------------

@dataclass(frozen=True)
class Command:
    """Recorder → shard: record `selected` now, or stop."""

    stop: bool = False
    selected: tuple[Selected, ...] = ()

    def line(self) -> bytes:
        body = {"cmd": "stop"} if self.stop else {"cmd": "reconcile", "selected": [asdict(s) for s in self.selected]}
        return json.dumps(body).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Command:
        data = json.loads(line)
        if data["cmd"] == "stop":
            return cls(stop=True)
        return cls(selected=tuple(Selected(**s) for s in data["selected"]))


@dataclass(frozen=True)
class Report:
    """Shard → recorder: its first media arrived, or it stopped with `pending` files not in the
    customer's storage (in the backup, or stored nowhere)."""

    event: str  # "media" | "stopped"
    pending: int = 0

    def line(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def parse(cls, line: bytes) -> Report:
        data: dict[str, Any] = json.loads(line)
        return cls(str(data["event"]), int(data.get("pending", 0)))


class ShardProcess:
    """A shard process and its pipe, on the recorder's side. Owned by the event loop."""

    def __init__(self, shard: int, env: Mapping[str, str], on_media: Callable[[], None]) -> None:
        self.shard = shard
        self._env = env
        self._on_media = on_media
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.pending = 0

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder_container.shard_recorder", env={**os.environ, **self._env},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())
        log.info("shard %d started (pid %d)", self.shard, self._proc.pid)

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            report = Report.parse(line)
            if report.event == "media":
                self._on_media()
            elif report.event == "stopped":
                self.pending = report.pending
                self._stopped.set()
        self._stopped.set()

    async def _send(self, command: Command) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command.line())
        await self._proc.stdin.drain()

    async def reconcile(self, selected: Sequence[Selected]) -> None:
        await self._send(Command(selected=tuple(selected)))

    async def stop(self, timeout: float) -> None:
        """Ask the shard to finish its files and uploads, and wait for it to exit."""
        if self._proc is None:
            return
        try:
            await self._send(Command(stop=True))
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except (ConnectionError, TimeoutError):
            log.error("shard %d did not stop in time; terminating it", self.shard)
            self._proc.terminate()
        await self._proc.wait()
