"""Single-stream recording as publishers come and go, through the recorder and an in-memory
room (tests/support/fake_room.py) with real writers and uploads: a stream whose publisher
left is stored whole at once and lets go of its thread and file; it goes on in the same
playlist when they come back; the work directory goes once everything reached storage, and
stays with whatever did not."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws, wiring
from chalicelib.config import Settings
from chalicelib.events import LeaveCode
from chalicelib.naming import b64_name
from recorder_container.recorder import Recorder
from tests.functional.test_recorder import BUCKET, admitted, playlist, recorder, send_media, stored, until
from tests.support.fake_room import FakeRoom


@pytest.fixture
def customer(aws_env: Settings, registry: Any, tmp_path: Path) -> Settings:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return dataclasses.replace(aws_env, run_dir=tmp_path)


def writers(user: str) -> list[threading.Thread]:
    """The writer threads of a user's streams in this process."""
    return [t for t in threading.enumerate() if t.name.startswith("writer-") and f"_s_{b64_name(user)}__" in t.name]


def seconds_stored(user: str, kind: str) -> float:
    keys = stored(f"{b64_name(user)}__UserId_e_main_{kind}.m3u8")
    return sum(s.duration_ms for s in playlist(keys[0]).segments) / 1000 if keys else 0.0


def stop(rec: Recorder, running: asyncio.Task[int]) -> Any:
    wiring.task_store().request_stop(rec.task_id, LeaveCode.API_STOP)
    return asyncio.wait_for(running, 30)


def test_a_publisher_who_leaves_is_stored_at_once_and_goes_on_in_the_same_playlist(customer: Settings) -> None:
    task, room = admitted("rec+21."), FakeRoom()
    rec = recorder(customer, task, room)

    async def scenario() -> int:
        running = asyncio.create_task(rec.run())
        room.publish("dora", "audio", "video")
        await until(lambda: room.live("dora"), "a subscription to dora")
        assert len(writers("dora")) == 2
        send_media(room, "dora", 2.0)
        room.unpublish("dora")
        await until(lambda: not writers("dora"), "her writers to end when she left")
        # her last file is stored now, not when the task ends
        await until(lambda: seconds_stored("dora", "video") >= 1.9, "all of her video stored", timeout=5)
        assert not playlist(stored(f"{b64_name('dora')}__UserId_e_main_video.m3u8")[0]).ended  # she may be back
        await until(lambda: not list(rec.settings.work_dir.glob("*.ts")), "every file of hers in storage")
        room.publish("dora", "audio", "video")
        await until(lambda: len(writers("dora")) == 2, "her writers back when she is")
        send_media(room, "dora", 2.0)
        return await stop(rec, running)

    assert asyncio.run(scenario()) == 0
    assert not writers("dora")
    video = playlist(stored(f"{b64_name('dora')}__UserId_e_main_video.m3u8")[0])
    assert video.ended and [s.discontinuity for s in video.segments].count(True) == 1
    assert 3.8 <= sum(s.duration_ms for s in video.segments) / 1000 <= 4.2
    names = [s.name for s in video.segments]
    assert len(set(names)) == len(names) and set(names) <= {k.rsplit("/", 1)[-1] for k in stored(".ts")}
    assert 3.8 <= seconds_stored("dora", "audio") <= 4.4
    assert not rec.settings.work_dir.exists()  # everything reached storage: nothing is left behind


def test_no_thread_or_file_stays_for_publishers_who_left(customer: Settings) -> None:
    task, room = admitted("rec+22."), FakeRoom()
    rec = recorder(customer, task, room)
    users = [f"guest{i}" for i in range(4)]

    async def scenario() -> int:
        running = asyncio.create_task(rec.run())
        for user in users:
            room.publish(user, "audio", "video")
        await until(lambda: all(room.live(u) for u in users), "subscriptions to every guest")
        for user in users:
            send_media(room, user, 1.0)
            room.unpublish(user)
        await until(lambda: not any(writers(u) for u in users), "every guest's writers to end")
        await until(lambda: not list(rec.settings.work_dir.glob("*.ts")), "their files to reach storage")
        assert not running.done()
        return await stop(rec, running)

    assert asyncio.run(scenario()) == 0
    assert len(stored(".m3u8")) == 2 * len(users)


def test_files_that_never_reached_storage_stay_in_the_work_directory(customer: Settings) -> None:
    task, room = admitted("rec+23."), FakeRoom()
    s3 = aws.client("s3")
    for bucket in (BUCKET, customer.internal_bucket):  # the customer's storage and the backup: nothing is stored
        for listed in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=listed["Key"])
        s3.delete_bucket(Bucket=bucket)
    rec = recorder(customer, task, room)
    rec.settings = dataclasses.replace(rec.settings, drain_s=0.5)

    async def scenario() -> int:
        running = asyncio.create_task(rec.run())
        room.publish("erin", "audio", "video")
        await until(lambda: room.live("erin"), "a subscription to erin")
        send_media(room, "erin", 2.0)
        room.unpublish("erin")
        await until(lambda: not writers("erin"), "her writers to end when she left")
        return await stop(rec, running)

    assert asyncio.run(scenario()) == 0
    left = sorted(p.name for p in rec.settings.work_dir.iterdir())
    assert len(left) >= 4 and all(name.endswith(".ts") for name in left)  # her audio and video, kept to send later
