"""Steps the media tests and benches compose into scenarios: publishers joining a real Janus
room, SDK calls kept off the loop that drives them, waiting for a task's files and its end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.publisher import Participant
from tests.support.sdk import delete, describe, ended
from tests.support.stack import LocalStack, wait_for

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """SDK and boto3 calls block: keep them off the loop that drives the publishers."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def join(stack: LocalStack, room: str, user: str, color: tuple[int, int, int], hz: float,
               create: bool = False, vp8: bool = False, display: str | None = None, **kw: Any) -> Participant:
    p = Participant(stack.janus_url, room, user, display)
    await p.join(create_room=create, videocodec="vp8" if vp8 else "h264")
    await p.publish(color, hz, video_codec="video/VP8" if vp8 else "video/H264", **kw)
    return p


async def stop_and_wait(stack: LocalStack, task_id: str) -> None:
    await call(delete, stack, task_id)
    await call(wait_for, lambda: ended(stack, task_id), 60, "the task to end")



async def listed_files(stack: LocalStack, task_id: str, count: int, timeout: float = 15) -> list[Any]:
    """Describe's StorageFileList once it lists `count` files (a file is listed when its first
    segment is cut, a segment length after its first media)."""
    deadline = time.monotonic() + timeout
    while True:
        files = (await call(describe, stack, task_id)).StorageFileList
        if len(files) >= count or time.monotonic() > deadline:
            return list(files)
        await asyncio.sleep(0.5)


async def record_for(stack: LocalStack, request: Any, seconds: float, *people: Participant) -> str:
    """Create the task, let it record for `seconds`, Delete it and wait for its end; then the
    publishers leave. Its TaskId."""
    task_id = str((await call(stack.client().CreateCloudRecording, request)).TaskId)
    await asyncio.sleep(seconds)
    await stop_and_wait(stack, task_id)
    for p in people:
        await p.leave()
    return task_id
