"""The recorder of one task, driven through an in-memory room (tests/support/fake_room.py):
joining, publishers coming and going, Modify, Delete, MaxIdleTime and a room server that goes
away — with the real task store, event queue and storage (moto in-process), the real writers
and uploads, and the files judged as they land."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib import aws, wiring
from chalicelib.config import Settings
from chalicelib.dispatch import Direct
from chalicelib.events import LeaveCode
from chalicelib.models import SubscribeStreamUserIds
from chalicelib.naming import parse as parse_name
from chalicelib.naming import playlist_name, segment_name
from chalicelib.playlist import Segment, parse, render
from chalicelib.tasks import ENDED, IN_PROGRESS, StorageFile, TaskRecord
from recorder_container import health
from recorder_container.recorder import Recorder
from recorder_container.settings import RecorderSettings
from tests.support.fake_room import FakeRoom
from tests.support.queued import queued_events
from tests.support.synthetic import h264_frames, pcm_frames
from tests.support.task_records import admitted as admitted_task

BUCKET = "customer"


@pytest.fixture
def customer(aws_env: Settings, registry: Any, tmp_path: Path) -> Settings:
    """The settings, with the customer's bucket and a work directory of the test's own."""
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return dataclasses.replace(aws_env, run_dir=tmp_path)


def admitted(task_id: str, **record: Any) -> TaskRecord:
    return admitted_task(task_id, BUCKET, **record)


def recorder(settings: Settings, task: TaskRecord, room: FakeRoom, speed: float = 1.0) -> Recorder:
    """The task's recorder in this process; `speed` > 1 runs its clock that much faster than time."""
    start, real = time.time(), time.monotonic()
    return Recorder(
        settings=RecorderSettings(task.task_id, settings, segment_s=1.0, drain_s=10, poll_s=0.05),
        store=wiring.task_store(), app_for=wiring.app_registry().get_app, queue=wiring.event_queue(),
        internal=wiring.internal_bucket(), open_room=lambda _task, _app: room,
        clock=lambda: start + (time.monotonic() - real) * speed)


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


def send_media(room: FakeRoom, feed: str, seconds: float, audio: str | None = "0", video: str | None = "1") -> None:
    """`seconds` of a publisher's audio and video, arriving as if in real time from now."""
    sub = room.live(feed)
    assert sub is not None
    t0 = time.time()
    if video is not None:
        for frame in h264_frames(seconds, keyint=15):
            sub.deliver(video, frame, t0 + frame.pts / 90000)
    if audio is not None:
        for frame in pcm_frames(seconds):
            sub.deliver(audio, frame, t0 + 0.08 + frame.pts / 48000)


def stored(key_part: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="rec/").get("Contents", [])
    return sorted(o["Key"] for o in listed if key_part in o["Key"])


def playlist(key: str) -> Any:
    return parse(aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())


def test_a_publisher_comes_is_recorded_modified_goes_and_delete_ends_the_task(customer: Settings) -> None:
    task, room = admitted("rec+1."), FakeRoom()
    store = wiring.task_store()

    async def scenario() -> int:
        running = asyncio.create_task(recorder(customer, task, room).run())
        await until(lambda: room.joined, "the robot in the room")
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        assert room.live("alice").mids == ("0", "1")  # type: ignore[union-attr]
        send_media(room, "alice", 3.0)
        await until(lambda: len(store.get(task.task_id).files) == 2, "Describe to list alice's two files")  # type: ignore[union-attr]
        assert store.get(task.task_id).status == IN_PROGRESS  # type: ignore[union-attr]
        store.update_config(task.task_id, SubscribeStreamUserIds(UnSubscribeVideoUserIds=["alice"]), None)
        await until(lambda: room.live("alice") and room.live("alice").mids == ("0",), "Modify to drop her video")  # type: ignore[union-attr]
        room.unpublish("alice")
        await until(lambda: room.live("alice") is None, "her subscription to close when she leaves")
        store.request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    ended = wiring.task_store().get(task.task_id)
    assert ended is not None and ended.status == ENDED and ended.leave_code == 0
    # Describe still lists the video playlist Modify stopped (every file the task produced)
    assert sorted(f.TrackType for f in ended.storage_files()) == ["audio", "video"]
    types = [e["EventType"] for e in queued_events()]
    assert types[0] == 301 and types.count(307) == 2 and types.count(304) == 2 and types[-2:] == [302, 305]
    playlists = stored(".m3u8")
    assert [k.rsplit("_", 1)[-1] for k in playlists] == ["audio.m3u8", "video.m3u8"]
    for key in playlists:
        listed = playlist(key)
        assert listed.ended and listed.segments
        assert all(key.rsplit("/", 1)[0] + "/" + s.name in stored(".ts") for s in listed.segments)
    video = playlist(playlists[1])
    assert 2.5 <= sum(s.duration_ms for s in video.segments) / 1000 <= 3.5  # every second that was sent
    assert (video.segments[0].width, video.segments[0].height) == (320, 180)


def test_the_health_check_follows_the_control_loop(customer: Settings) -> None:
    """Healthy while the recorder's loop turns; a loop that stopped turning STALE_S ago is not."""
    task, room = admitted("rec+health."), FakeRoom()
    env = {**os.environ, "CLOUDREC_TASK_ID": task.task_id, "CLOUDREC_RUN_DIR": str(customer.run_dir)}

    def health_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "recorder_container.health"], env=env, capture_output=True,
                              text=True, timeout=30)

    assert health_check().returncode == 1  # not started
    settings = RecorderSettings(task.task_id, customer, segment_s=1.0, drain_s=10, poll_s=0.05)

    async def scenario() -> None:
        running = asyncio.create_task(recorder(customer, task, room).run())
        await until(lambda: room.joined, "the robot in the room")
        result = await asyncio.to_thread(health_check)
        assert result.returncode == 0, result.stderr
        later = time.time() + health.STALE_S + 1  # as if the loop had hung since
        assert "last turned" in (health.check(health.alive_file(settings), later) or "")
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        await asyncio.wait_for(running, 30)

    run(scenario)


def test_idle_time_counts_only_without_anchors(customer: Settings) -> None:
    task, room = admitted("rec+2.", MaxIdleTime=5), FakeRoom()
    room.present.add("bob")  # in the room, sending nothing

    async def scenario() -> tuple[int, float]:
        rec = recorder(customer, task, room, speed=10)
        running = asyncio.create_task(rec.run())
        await until(lambda: room.joined, "the robot in the room")
        await asyncio.sleep(1.2)  # 12 s on the recorder's clock, more than MaxIdleTime
        assert not running.done(), "an anchor who sends nothing keeps the task going"
        room.present.clear()
        emptied = rec.clock()
        return await asyncio.wait_for(running, 10), emptied

    code, emptied = run(scenario)
    ended = wiring.task_store().get(task.task_id)
    assert code == 0 and ended is not None and ended.leave_code == LeaveCode.IDLE
    (stop,) = queued_events(302)
    assert stop["EventInfo"]["Payload"] == {"LeaveCode": 99}
    # MaxIdleTime after the room emptied (on the recorder's clock), give or take a presence poll and a pass
    assert 5 <= stop["EventInfo"]["EventMsTs"] / 1000 - emptied < 9


def test_a_room_server_that_goes_away_is_joined_again_and_the_recording_goes_on(customer: Settings) -> None:
    task, room = admitted("rec+3."), FakeRoom()

    async def scenario() -> int:
        running = asyncio.create_task(recorder(customer, task, room).run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        first = room.live("alice")
        send_media(room, "alice", 2.0)
        room.failures = 1  # Janus drops out
        await until(lambda: room.leaves >= 1 and room.live("alice") not in (None, first), "a new subscription")
        assert first is not None and first.closed and room.joins == 2
        send_media(room, "alice", 2.0)
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    video = playlist(stored("video.m3u8")[0])
    assert video.ended and any(s.discontinuity for s in video.segments)  # the new subscription is a new source
    assert 3 <= sum(s.duration_ms for s in video.segments) / 1000 <= 4.5


def test_the_robot_waits_for_its_room_and_its_id(customer: Settings) -> None:
    task, room = admitted("rec+4."), FakeRoom()
    room.exists, room.taken = False, True

    async def scenario() -> int:
        rec = recorder(customer, task, room, speed=4)
        running = asyncio.create_task(rec.run())
        await asyncio.sleep(0.5)  # 2 s: joins were tried and refused
        assert not room.joined
        room.exists = True
        await asyncio.sleep(0.3)
        assert not room.joined  # its id is still taken
        room.taken = False
        await until(lambda: room.joined, "the robot in the room")
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    assert room.joins == 1
    # no 301 while the room was missing; Status 1 while its id was held; Status 0 once in
    assert [e["EventInfo"]["Payload"]["Status"] for e in queued_events(301)] == [1, 0]


def test_a_storage_outage_loses_nothing_and_every_file_is_announced(customer: Settings) -> None:
    """The customer's bucket is gone: every file goes to the backup at once, the task ends on
    time with 305 Status 1, and once the bucket is back the scheduled delivery moves every file
    there (playlists after their segments) and sends 305 Status 2."""
    from chalicelib import backup

    task, room = admitted("rec+5."), FakeRoom()
    aws.client("s3").delete_bucket(Bucket=BUCKET)  # every upload fails until the bucket is back
    store = wiring.task_store()

    async def scenario() -> int:
        rec = recorder(customer, task, room)
        running = asyncio.create_task(rec.run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        send_media(room, "alice", 3.0)
        await asyncio.sleep(1.0)
        store.request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 20)

    assert run(scenario) == 0
    events = queued_events(take=True)
    types = [e["EventType"] for e in events]
    # 302 when the robot left; each playlist's 304 once it was stored (in the backup); 305 last
    assert types.count(302) == 1 and types.count(304) == 2 and types[-1] == 305, types
    assert events[-1]["EventInfo"]["Payload"] == {"Status": 1}
    refused = [e["EventInfo"]["Payload"] for e in events if e["EventType"] == 308]
    assert refused == [{"Code": "NoSuchBucket", "Message": "The specified bucket does not exist"}]
    kept = wiring.internal_bucket().listing(f"backup/{task.task_id}/")
    assert len(kept) >= 4 and sum(k.endswith(".m3u8") for k, _ in kept) == 2

    assert backup.deliver(store, wiring.internal_bucket(), wiring.event_queue(), customer, time.time()).moved == 0
    aws.client("s3").create_bucket(Bucket=BUCKET)  # back
    assert backup.deliver(store, wiring.internal_bucket(), wiring.event_queue(), customer, time.time()).moved == len(kept)
    assert wiring.internal_bucket().listing(f"backup/{task.task_id}/") == []
    for key in stored(".m3u8"):
        pl = playlist(key)
        assert pl.ended and all(stored(seg.name) for seg in pl.segments)
    assert [e["EventInfo"]["Payload"] for e in queued_events() if e["EventType"] == 305] == [{"Status": 2}]


def test_a_platform_stop_hands_the_task_over(customer: Settings) -> None:
    """SIGTERM (Fargate retirement, scale-in) is not the customer's stop: the files are closed
    and stored, the lease is given up, no 302, and the next sweep relaunches the task as ha1."""
    from chalicelib import reaper
    from tests.support.fakes import FakeLauncher

    task, room = admitted("rec+6."), FakeRoom()

    async def scenario() -> int:
        rec = recorder(customer, task, room)
        running = asyncio.create_task(rec.run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        send_media(room, "alice", 2.0)
        await until(lambda: wiring.task_store().get(task.task_id).files, "a file")  # type: ignore[union-attr]
        rec.request_stop()
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    handed = wiring.task_store().get(task.task_id)
    assert handed is not None and handed.status == IN_PROGRESS and handed.lease_owner is None
    assert handed.lease_expires_ms <= time.time() * 1000
    assert 302 not in [e["EventType"] for e in queued_events()]
    assert all(playlist(key).ended for key in stored(".m3u8"))  # what it recorded is closed and stored
    launcher = FakeLauncher()
    assert reaper.reap(wiring.task_store(), Direct(wiring.task_store(), launcher), wiring.event_queue(), customer, time.time() + 1) == 1
    assert launcher.launched == [(task.task_id, 1)]


class FlakyEndpoint:
    """An AWS client whose endpoint is unreachable for a while, as botocore reports it; with
    `hang`, a call waits out the outage first (a frozen endpoint answers nothing)."""

    def __init__(self, client: Any, hang: bool = False) -> None:
        self._client, self.down_until, self.hang = client, 0.0, hang

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if time.monotonic() < self.down_until:
                from botocore.exceptions import EndpointConnectionError

                if self.hang:
                    time.sleep(max(0.0, self.down_until - time.monotonic()))
                raise EndpointConnectionError(endpoint_url="http://aws.local")
            return call(*args, **kwargs)

        return guarded


def test_a_task_store_hiccup_does_not_stop_the_recording(customer: Settings) -> None:
    from chalicelib.task_store import TaskStore

    task, room = admitted("rec+7."), FakeRoom()
    flaky = FlakyEndpoint(aws.client("dynamodb"))
    store = TaskStore(flaky, customer.tasks_table, customer.limits_table)

    async def scenario() -> int:
        rec = recorder(customer, task, room)
        rec.store = store
        running = asyncio.create_task(rec.run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        send_media(room, "alice", 1.5)
        flaky.down_until = time.monotonic() + 3  # the store goes away for 3 s (the lease is 20 s)
        await asyncio.sleep(1.0)
        assert not running.done(), "the recorder goes on without its store"
        send_media(room, "alice", 1.5)
        await until(lambda: time.monotonic() > flaky.down_until, "the store to come back")
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    ended = wiring.task_store().get(task.task_id)
    assert ended is not None and ended.status == ENDED and ended.leave_code == 0
    video = playlist(stored("video.m3u8")[0])
    assert video.ended and sum(s.duration_ms for s in video.segments) >= 2500  # both halves were recorded


def test_a_successor_ends_the_playlists_its_dead_predecessor_left_open(customer: Settings) -> None:
    """ha0 died mid-stream: its playlists list what it stored but have no ENDLIST, so a player
    waits for more. ha1 ends them and records on under its own names."""
    task, room = admitted("rec+9."), FakeRoom()
    store, s3 = wiring.task_store(), aws.client("s3")
    dead = task.naming(0)
    start = int(time.time() * 1000) - 10_000
    left: dict[str, bool] = {}
    for track, ended in (("video", False), ("audio", True)):
        stem = dead.stream_stem("alice", "main", track)
        segments = [Segment(segment_name(stem, start + i * 1000), start + i * 1000, 1000, 100) for i in range(3)]
        s3.put_object(Bucket=BUCKET, Key=task.directory + playlist_name(stem),
                      Body=render(segments, start, ended).encode())
        store.put_file(task.task_id, StorageFile(playlist_name(stem), "alice", track, start))
        left[playlist_name(stem)] = ended
    before = {name: s3.get_object(Bucket=BUCKET, Key=task.directory + name)["Body"].read() for name in left}

    async def scenario() -> int:
        rec = recorder(customer, task, room)
        rec.settings = dataclasses.replace(rec.settings, ha_index=1)
        running = asyncio.create_task(rec.run())
        await until(lambda: room.joined, "the successor in the room")
        await until(lambda: all(playlist(task.directory + name).ended for name in left), "ENDLIST in ha0's playlists")
        store.request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    for name, was_ended in left.items():
        now = s3.get_object(Bucket=BUCKET, Key=task.directory + name)["Body"].read()
        assert len(playlist(task.directory + name).segments) == 3  # nothing added, nothing lost
        assert (now == before[name]) == was_ended  # one that had ended is left as it was
    assert [e["EventType"] for e in queued_events() if e["EventType"] == 306] == [306]


def test_an_event_queue_outage_stalls_nothing_and_loses_no_event(customer: Settings) -> None:
    """SQS hangs for 3 s from the start: the robot joins and records meanwhile, and every event
    arrives afterwards, once and in order."""
    from chalicelib.events import EventQueue

    task, room = admitted("rec+10."), FakeRoom()
    flaky = FlakyEndpoint(aws.client("sqs"), hang=True)
    queue = EventQueue(flaky, customer.events_queue)
    assert queue.url

    async def scenario() -> int:
        rec = recorder(customer, task, room)
        rec.queue = queue
        flaky.down_until = time.monotonic() + 3
        running = asyncio.create_task(rec.run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice while the queue hangs", timeout=1.5)
        send_media(room, "alice", 3.0)
        await until(lambda: time.monotonic() > flaky.down_until, "the queue to come back")
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    types = [e["EventType"] for e in queued_events()]
    assert types[0] == 301 and types[-2:] == [302, 305], types
    assert types.count(307) == 2 and types.count(304) == 2 and types.count(301) == 1, types


def test_a_publisher_with_a_2_kb_id_is_recorded_and_named_in_short(customer: Settings) -> None:
    """The id is the participant's own choice: its files get a short, stable name that S3 takes,
    and Describe pairs each file name with the whole UserId."""
    from chalicelib.naming import file_user_id

    task, room = admitted("rec+11."), FakeRoom()
    long_id = "x" * 2048

    async def scenario() -> int:
        running = asyncio.create_task(recorder(customer, task, room).run())
        room.publish(long_id, "audio", "video")
        await until(lambda: room.live(long_id), "a subscription to the long id")
        send_media(room, long_id, 2.5)
        await until(lambda: len(wiring.task_store().get(task.task_id).files) == 2, "two files listed")  # type: ignore[union-attr]
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        return await asyncio.wait_for(running, 30)

    assert run(scenario) == 0
    ended = wiring.task_store().get(task.task_id)
    assert ended is not None
    assert {f.UserId for f in ended.storage_files()} == {long_id}
    for file in ended.storage_files():
        assert file_user_id(long_id) in parse_name(file.FileName).user_id  # type: ignore[union-attr]
        assert playlist(ended.directory + file.FileName).ended
    assert [e["EventInfo"]["Payload"]["Status"] for e in queued_events(305)] == [0]  # every file stored
    keys = stored(task.task_id)
    assert keys and max(len(k.encode()) for k in keys) <= 1024  # what S3 takes (moto does not check)
