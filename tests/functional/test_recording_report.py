"""The recording report from end to end of the control plane: a recorder fed by an in-memory
room (tests/support/fake_room.py) keeps its part in the internal bucket (moto in-process) while
it records and when it ends, a successor's part continues it after a hand-over, the admin CLI
shows and lists it — and a recorder's scoped credentials reach its own task's report only."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib import admin, aws, recorder_access, recording_report, wiring
from chalicelib.config import Settings
from chalicelib.events import LeaveCode
from chalicelib.tasks import TaskRecord
from recorder_container.recorder import Recorder
from recorder_container.settings import RecorderSettings
from tests.functional.test_recorder import until
from tests.functional.test_recorder_access import APP, OTHER_TASK, SETTINGS, TASK, obj, simulate
from tests.support.fake_room import FakeRoom
from tests.support.synthetic import h264_frames, pcm_frames
from tests.support.task_records import admitted

BUCKET = "customer"


@pytest.fixture
def customer(aws_env: Settings, registry: Any, tmp_path: Path) -> Settings:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return dataclasses.replace(aws_env, run_dir=tmp_path)


def recorder(settings: Settings, task: TaskRecord, room: FakeRoom, ha: int = 0) -> Recorder:
    return Recorder(
        settings=RecorderSettings(task.task_id, settings, ha_index=ha, segment_s=1.0, drain_s=10, poll_s=0.05),
        store=wiring.task_store(), app_for=wiring.app_registry().get_app, queue=wiring.event_queue(),
        internal=wiring.internal_bucket(), open_room=lambda _task, _app: room, report_interval_s=0.2)


def send_media(room: FakeRoom, seconds: float) -> None:
    """`seconds` of alice's audio (mid 0) and 320x180 video at 15 fps (mid 1), arriving from now."""
    sub = room.live("alice")
    assert sub is not None
    t0 = time.time()
    for frame in h264_frames(seconds, keyint=15):
        sub.deliver("1", frame, t0 + frame.pts / 90000)
    for sound in pcm_frames(seconds):
        sub.deliver("0", sound, t0 + sound.pts / 48000)


def part(task_id: str, ha: int = 0) -> dict[str, Any] | None:
    try:
        return json.loads(wiring.internal_bucket().get(recording_report.part_key(task_id, ha)))  # type: ignore[no-any-return]
    except aws.client("s3").exceptions.NoSuchKey:
        return None


def test_the_recorder_keeps_its_report_and_the_admin_cli_shows_and_lists_it(
        customer: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    task, room = admitted("rep+1.", BUCKET), FakeRoom()

    async def scenario() -> dict[str, Any]:
        running = asyncio.create_task(recorder(customer, task, room).run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        send_media(room, 3.0)
        # while it records: its part, with what came so far
        early = await until(lambda: (p := part(task.task_id)) and len(p["Streams"]) == 2 and p, "a first part")
        assert early["EndedAt"] is None and not early["TaskEnded"]
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        assert await asyncio.wait_for(running, 30) == 0
        return early

    run = asyncio.run(scenario())
    final = part(task.task_id)
    assert final is not None and final["TaskEnded"] and final["EndedAt"] >= final["UpdatedAt"] - 1
    assert final["StartedAt"] <= run["UpdatedAt"] <= final["EndedAt"]
    for secret in ("ak", "sk", wiring.app_registry().get_app(task.sdkappid).usersig_key):  # type: ignore[union-attr]
        assert f'"{secret}"' not in json.dumps(final)

    assert admin.main(["report", task.task_id]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["TaskId"], report["SdkAppId"], report["RoomId"]) == (task.task_id, 1400000001, "8848")
    assert report["EndedAt"] == final["EndedAt"] and report["HandOvers"] == []
    streams = {s["Kind"]: s for s in report["Streams"]}
    video, audio = streams["video"], streams["audio"]
    assert video["UserId"] == audio["UserId"] == "alice" and video["MediaId"] == "main"
    assert (video["FramesReceived"], video["FramesLost"]) == (45, 0) and (audio["FramesReceived"], audio["FramesLost"]) == (150, 0)
    assert [(r["Width"], r["Height"]) for r in video["Resolutions"]] == [(320, 180)]
    assert video["DurationS"] == pytest.approx(44 / 15, abs=0.01) and video["BitrateKbps"] > 0
    assert audio["BitrateKbps"] is None and video["Left"] is None

    assert admin.main(["reports"]) == 0
    assert [t["TaskId"] for t in json.loads(capsys.readouterr().out)] == [task.task_id]
    assert admin.main(["report", "no-such-task"]) == 1
    assert "has no recording report" in capsys.readouterr().err


def test_after_a_hand_over_the_successor_continues_the_same_streams(customer: Settings) -> None:
    task, room = admitted("rep+2.", BUCKET), FakeRoom()

    async def scenario() -> None:
        first = recorder(customer, task, room)
        running = asyncio.create_task(first.run())
        room.publish("alice", "audio", "video")
        await until(lambda: room.live("alice"), "a subscription to alice")
        send_media(room, 2.0)
        await asyncio.sleep(2.0)
        first.request_stop()  # SIGTERM: hand the task over
        assert await asyncio.wait_for(running, 30) == 0
        successor = asyncio.create_task(recorder(customer, task, room, ha=1).run())
        await until(lambda: room.live("alice") and not room.live("alice").closed, "the successor's subscription")  # type: ignore[union-attr]
        await asyncio.sleep(1.2)
        send_media(room, 2.0)
        await until(lambda: (p := part(task.task_id, 1)) and len(p["Streams"]) == 2, "the successor's part")
        wiring.task_store().request_stop(task.task_id, LeaveCode.API_STOP)
        assert await asyncio.wait_for(successor, 30) == 0

    asyncio.run(scenario())
    handed, last = part(task.task_id, 0), part(task.task_id, 1)
    assert handed is not None and last is not None
    assert not handed["TaskEnded"] and handed["EndedAt"] is not None and last["TaskEnded"]
    report = recording_report.read(wiring.internal_bucket(), task.task_id)
    assert report is not None
    assert report["HandOvers"] == [{"At": last["StartedAt"], "From": 0, "To": 1}]
    assert report["StartedAt"] == handed["StartedAt"] and report["EndedAt"] == last["EndedAt"]
    video = next(s for s in report["Streams"] if s["Kind"] == "video")
    assert len(report["Streams"]) == 2 and video["FramesReceived"] == 60
    assert video["DurationS"] == pytest.approx(2 * 29 / 15, abs=0.02)
    (hole,) = video["Gaps"]  # from ha0's last frame to ha1's first: the publisher stayed
    assert hole["At"] == next(s for s in handed["Streams"] if s["Kind"] == "video")["LastAt"]
    assert hole["DurationMs"] > 1000
    assert [(r["Width"], r["Height"]) for r in video["Resolutions"]] == [(320, 180)]


def test_a_recorder_may_write_its_own_tasks_report_only() -> None:
    session = recorder_access.session_policy(recorder_access.TaskScope(TASK, APP), SETTINGS)
    own = [("s3:PutObject", obj(recording_report.part_key(TASK, 0)), {}),
           ("s3:PutObject", obj(recording_report.part_key(TASK, 2, 1)), {})]
    foreign = [("s3:PutObject", obj(recording_report.part_key(OTHER_TASK, 0)), {}),
               ("s3:PutObject", obj(f"{recording_report.PREFIX}x/{TASK}"), {}),
               ("s3:PutObject", f"arn:aws:s3:::another-bucket/{recording_report.part_key(TASK, 0)}", {})]
    assert simulate(own, session) == ["Allowed"] * len(own)
    assert "Allowed" not in simulate(foreign, session)
