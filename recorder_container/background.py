"""Work a recorder starts and does not wait for (Describe's file list, the first-media mark, a
keyframe request): tracked, so a failure is logged instead of lost, and so what is still
owed can be waited for before the task ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """Tasks started and not awaited. Owned by the event loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failures += 1
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def wait(self, timeout: float) -> bool:
        """Wait until everything started has finished; False if some of it has not in time."""
        pending = set(self._tasks)
        if not pending:
            return True
        _, late = await asyncio.wait(pending, timeout=timeout)
        return not late
