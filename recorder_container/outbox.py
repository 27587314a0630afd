"""Events on their way to the event queue: kept in order and sent off the event loop, tried
again while the queue (SQS) does not answer. An outage of it then neither stalls the
recording (a send that hangs blocked the whole event loop before) nor loses an event; the
events arrive late, in order, once each (their dedup keys)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from chalicelib import retry
from chalicelib.events import Event, EventQueue
from chalicelib.retry import RetryPolicy
from chalicelib.tasks import TaskRecord

log = logging.getLogger(__name__)

SEND_RETRY = RetryPolicy(delays_s=(0.5, 1.0, 2.0, 5.0, 10.0))  # no limit: the process's end ends it


class Outbox:
    """Owned by the event loop; each send runs on a worker thread."""

    def __init__(self, queue: EventQueue, task: TaskRecord, policy: RetryPolicy = SEND_RETRY) -> None:
        self._queue = queue
        self._task = task
        self._policy = policy
        self._waiting: deque[tuple[Event, int]] = deque()
        self._sender: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def put(self, event: Event, at_ms: int) -> None:
        """Send `event` (of time `at_ms`) after those before it."""
        self._waiting.append((event, at_ms))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="events")

    async def flush(self, timeout: float) -> int:
        """Wait until every event is queued, at most `timeout` s; how many are still waiting."""
        if self._sender is not None and not self._sender.done():
            await asyncio.wait({self._sender}, timeout=timeout)
        if self._waiting:
            log.error("%d events could not be queued", len(self._waiting))
        return len(self._waiting)

    async def _send(self) -> None:
        failures = 0
        while self._waiting:
            event, at_ms = self._waiting[0]
            try:
                await asyncio.to_thread(self._queue.publish, event, self._task, at_ms)
            except Exception as exc:  # botocore, network: the queue is out for now
                failures += 1
                if failures == 1:
                    log.warning("events cannot be queued (%s); trying again", retry.error_code(exc))
                await asyncio.sleep(self._policy.delay(failures) or 0.0)
                continue
            if failures:
                log.info("events are queued again")
            failures = 0
            self._waiting.popleft()
