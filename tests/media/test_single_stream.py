"""Single-stream recording end to end: aiortc publishers in a real Janus room, the official
SDK as client, the recorder process, moto S3 as the customer's storage; the files are
judged with PyAV."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from tencentcloud.trtc.v20190722 import models

from chalicelib.naming import b64_name, b64_value
from tests.support.media import SEGMENT_S
from tests.support.media_checks import Recording, middle_color, probe, tone_hz, utc17_ms
from tests.support.media_scenario import BLUE, GREEN, RED, call, join, listed_files, record_for, run, stop_and_wait
from tests.support.sdk import create_request, delete, describe
from tests.support.sdk import ended as task_ended
from tests.support.stack import SDKAPPID, LocalStack, wait_for


def close_to(value: float, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance


def check_stream_files(rec: Recording, playlist_name: str, kind: str, color: tuple[int, int, int] | None,
                       hz: float | None, seconds: float) -> list[int]:
    """Tags, names and media of one stream; returns its segments' UTC17 times (ms)."""
    pl = rec.playlist(playlist_name)
    assert pl.ended and pl.segments, pl.text
    start = int(pl.tag("EXT-X-TRTC-START-REC-TIME") or 0)
    stem = playlist_name.removesuffix(".m3u8")
    times = [utc17_ms(name) for name in pl.segments]
    for name in pl.segments:
        assert re.fullmatch(re.escape(stem) + r"_\d{17}\.ts", name) and name in rec.names()
    assert abs(times[0] - start) <= 1  # the first file starts at START-REC-TIME, on one clock
    assert re.search(r"#EXTINF:\d+\.\d{3},\n", pl.text)
    assert int(pl.tag("EXT-X-TARGETDURATION") or 0) >= round(max(pl.durations))
    assert close_to(sum(pl.durations), seconds, SEGMENT_S + 1.5), (sum(pl.durations), seconds)
    for duration in pl.durations[:-1]:  # every segment but the last is near the target length
        assert SEGMENT_S - 0.6 <= duration <= SEGMENT_S + 1.6, pl.durations
    middle = rec.download(pl.segments[len(pl.segments) // 2])
    info = probe(middle)
    if kind == "video":
        assert pl.tag("EXT-X-TRTC-VIDEO-METADATA") == "WIDTH:320 HEIGHT:180"
        assert info["video"]["codec"] == "h264" and (info["video"]["width"], info["video"]["height"]) == (320, 180)
        assert color is not None and all(abs(a - b) < 40 for a, b in zip(middle_color(middle), color, strict=True))
    else:
        assert info["audio"]["codec"] == "aac" and info["audio"]["sample_rate"] == 48000
        assert hz is not None and close_to(tone_hz(middle), hz, 5)
    return times


def check_ended(stack: LocalStack, task_id: str, leave_code: int, playlists: int) -> None:
    """The task ended with `leave_code` and every playlist it left is closed."""
    assert stack.callbacks.wait(task_id, 302)["EventInfo"]["Payload"] == {"LeaveCode": leave_code}
    found = Recording(stack.boto("s3"), task_id).playlists()
    assert len(found) == playlists and all(pl.ended for pl in found.values())


def test_two_publishers_each_recorded_to_its_own_hls(stack: LocalStack) -> None:
    async def scenario() -> tuple[str, Any, float]:
        alice = await join(stack, "6001", "alice", RED, 440, create=True)
        bob = await join(stack, "6001", "bob", BLUE, 660)
        task_id = (await call(stack.client().CreateCloudRecording, create_request("rec_two", room="6001"))).TaskId
        started = time.monotonic()
        await listed_files(stack, task_id, 4)
        mid = await call(describe, stack, task_id)
        await asyncio.sleep(13 - (time.monotonic() - started))
        await stop_and_wait(stack, task_id)
        await alice.leave()
        await bob.leave()
        return task_id, mid, 13.0

    task_id, mid, seconds = run(scenario)
    assert mid.Status == "InProgress"
    listed = {(f.UserId, f.TrackType): f for f in mid.StorageFileList}
    assert set(listed) == {("alice", "audio"), ("alice", "video"), ("bob", "audio"), ("bob", "video")}
    rec = Recording(stack.boto("s3"), task_id)
    report = json.loads(stack.admin("report", task_id))  # the recording report, as the admin CLI shows it
    assert report["TaskId"] == task_id and report["EndedAt"] and report["HandOvers"] == []
    reported = {(s["UserId"], s["Kind"]): s for s in report["Streams"]}
    assert set(reported) == set(listed)
    for user, color, hz in (("alice", RED, 440), ("bob", BLUE, 660)):
        for kind in ("audio", "video"):
            name = f"{SDKAPPID}_6001__UserId_s_{b64_name(user)}__UserId_e_main_{kind}.m3u8"
            assert listed[(user, kind)].FileName == name
            times = check_stream_files(rec, name, kind, color if kind == "video" else None,
                                       hz if kind == "audio" else None, seconds)
            assert abs(listed[(user, kind)].BeginTimeStamp - times[0]) <= 1
            stream = reported[(user, kind)]
            recorded = sum(rec.playlist(name).durations)
            assert close_to(stream["DurationS"], recorded, 1.5), (stream["DurationS"], recorded)
            per_s = 15 if kind == "video" else 50  # the publishers' frame rate; 20 ms Opus frames
            assert stream["FramesReceived"] >= 0.8 * per_s * stream["DurationS"], stream
            assert 0 <= stream["FramesLost"] <= 0.05 * stream["FramesReceived"], stream
            assert sum(g["DurationMs"] for g in stream["Gaps"]) < 3000, stream["Gaps"]
            # the receive path hands pictures out later than sound (aiortc's video buffer holds a frame)
            assert stream["AvOffsetMs"] is not None and -250 < stream["AvOffsetMs"] < 50, stream
            if kind == "video":
                assert [(r["Width"], r["Height"]) for r in stream["Resolutions"]][-1:] == [(320, 180)]
                assert stream["BitrateKbps"] > 0 and stream["Bitrate"] and stream["KeyframeRequests"] >= 1
    stack.callbacks.wait(task_id, 305)  # the last one: callbacks are delivered after the fact
    events = stack.callbacks.of(task_id)
    types = [e["EventType"] for e in events]
    assert types[0] == 301 and types.count(307) == 4 and types.count(304) == 4 and 303 in types
    assert types[-2:] == [302, 305]
    assert events[-2]["EventInfo"]["Payload"] == {"LeaveCode": 0}
    assert events[-1]["EventInfo"]["Payload"] == {"Status": 0}


def test_late_joiner_and_a_user_who_leaves_and_returns(stack: LocalStack) -> None:
    async def scenario() -> tuple[str, float]:
        alice = await join(stack, "6002", "alice", RED, 440, create=True)
        task_id = (await call(stack.client().CreateCloudRecording, create_request("rec_late", room="6002"))).TaskId
        await asyncio.sleep(5)
        carol = await join(stack, "6002", "carol", GREEN, 880)
        joined_at = time.time()
        await asyncio.sleep(4)
        await alice.leave()
        await asyncio.sleep(3)
        alice = await join(stack, "6002", "alice", RED, 440)
        await asyncio.sleep(5)
        await stop_and_wait(stack, task_id)
        await alice.leave()
        await carol.leave()
        return task_id, joined_at

    task_id, carol_joined = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    carol_video = rec.playlist(f"{SDKAPPID}_6002__UserId_s_{b64_name('carol')}__UserId_e_main_video.m3u8")
    carol_start = int(carol_video.tag("EXT-X-TRTC-START-REC-TIME") or 0) / 1000
    assert 0 <= carol_start - carol_joined <= 3
    alice_video = rec.playlist(f"{SDKAPPID}_6002__UserId_s_{b64_name('alice')}__UserId_e_main_video.m3u8")
    assert "#EXT-X-DISCONTINUITY" in alice_video.text and alice_video.ended
    times = [utc17_ms(n) for n in alice_video.segments]
    gaps = [(b - a) / 1000 - d for a, b, d in zip(times, times[1:], alice_video.durations, strict=False)]
    assert max(gaps) >= 2.0  # the 3 s away are a gap between files, not inside one
    alice_audio = rec.playlist(f"{SDKAPPID}_6002__UserId_s_{b64_name('alice')}__UserId_e_main_audio.m3u8")
    assert "#EXT-X-DISCONTINUITY" in alice_audio.text


def test_allow_and_block_lists_and_a_live_modify(stack: LocalStack) -> None:
    async def scenario() -> tuple[str, list[Any], list[Any]]:
        alice = await join(stack, "6003", "alice", RED, 440, create=True)
        bob = await join(stack, "6003", "bob", BLUE, 660)
        request = create_request("rec_rules", room="6003")
        request.RecordParams.SubscribeStreamUserIds = models.SubscribeStreamUserIds()
        request.RecordParams.SubscribeStreamUserIds.SubscribeVideoUserIds = ["alice"]
        request.RecordParams.SubscribeStreamUserIds.UnSubscribeAudioUserIds = ["b.*$"]
        task_id = (await call(stack.client().CreateCloudRecording, request)).TaskId
        before = await listed_files(stack, task_id, 2)
        await asyncio.sleep(1)  # nothing more shows up: bob's audio and video are not recorded
        before = (await call(describe, stack, task_id)).StorageFileList
        modify = models.ModifyCloudRecordingRequest()
        modify.from_json_string(json.dumps({"SdkAppId": SDKAPPID, "TaskId": task_id, "SubscribeStreamUserIds": {
            "SubscribeVideoUserIds": ["b.*$"], "UnSubscribeAudioUserIds": ["bob"]}}))
        await call(stack.client().ModifyCloudRecording, modify)
        changed = time.time()
        while time.time() - changed < 10:
            after = (await call(describe, stack, task_id)).StorageFileList
            if any(f.UserId == "bob" and f.TrackType == "video" for f in after):
                break
            await asyncio.sleep(0.5)
        took = time.time() - changed
        await asyncio.sleep(2)
        await stop_and_wait(stack, task_id)
        await alice.leave()
        await bob.leave()
        assert took < 8, f"Modify took {took:.1f} s to reach the recording"
        return task_id, before, after

    task_id, before, after = run(scenario)
    assert {(f.UserId, f.TrackType) for f in before} == {("alice", "audio"), ("alice", "video")}
    assert {(f.UserId, f.TrackType) for f in after} == {("alice", "audio"), ("alice", "video"), ("bob", "video")}
    rec = Recording(stack.boto("s3"), task_id)
    assert not [n for n in rec.names() if b64_name("bob") in n and "_audio" in n]
    alice_video = rec.playlist(f"{SDKAPPID}_6003__UserId_s_{b64_name('alice')}__UserId_e_main_video.m3u8")
    assert alice_video.ended and sum(alice_video.durations) <= 6 + SEGMENT_S  # it stopped at the Modify


def test_max_idle_time_ends_the_task_after_everyone_left(stack: LocalStack) -> None:
    async def scenario() -> str:
        alice = await join(stack, "6004", "alice", RED, 440, create=True)
        request = create_request("rec_idle", room="6004", MaxIdleTime=5)
        task_id = (await call(stack.client().CreateCloudRecording, request)).TaskId
        await asyncio.sleep(6)
        await alice.leave()
        await call(stack.callbacks.wait, task_id, 302, 30)
        await call(wait_for, lambda: task_ended(stack, task_id), 60, "the task to end")
        return str(task_id)

    check_ended(stack, run(scenario), leave_code=99, playlists=2)


def test_string_room_and_a_user_id_with_slash_and_padding(stack: LocalStack) -> None:
    user = "ab?x"  # base64 YWI/eA== : "/" and "=" both appear
    room = "class #1"

    async def scenario() -> str:
        p = await join(stack, room, user, GREEN, 550, create=True, video=False)
        request = create_request("rec_str", room=room)
        request.RoomIdType = 0
        request.StorageParams.CloudStorage.Vendor = 0  # COS, through its S3-compatible API
        return await record_for(stack, request, 6, p)

    task_id = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    assert b64_name(user) == "YWI-eA.."
    name = f"{SDKAPPID}_{b64_name(room)}__UserId_s_YWI-eA..__UserId_e_main_audio.m3u8"
    assert b64_value(b64_name(room)) == room
    assert name in rec.names()
    check_stream_files(rec, name, "audio", None, 550, 6.0)


@pytest.mark.parametrize("av_merge", [1])
def test_av_merge_puts_a_users_audio_and_video_in_one_stream(stack: LocalStack, av_merge: int) -> None:
    async def scenario() -> str:
        p = await join(stack, "6005", "dave", BLUE, 440, create=True)
        return await record_for(stack, create_request("rec_merge", room="6005", AvMerge=av_merge), 9, p)

    task_id = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    name = f"{SDKAPPID}_6005__UserId_s_{b64_name('dave')}__UserId_e_main_audio_video.m3u8"
    assert [n for n in rec.names() if n.endswith(".m3u8")] == [name]
    pl = rec.playlist(name)
    info = probe(rec.download(pl.segments[0]))
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert info["frames"]["video"] > 0 and info["frames"]["audio"] > 0


def test_vp8_publisher_is_transcoded_to_h264(stack: LocalStack) -> None:
    async def scenario() -> str:
        p = await join(stack, "6006", "erin", GREEN, 440, create=True, vp8=True)
        return await record_for(stack, create_request("rec_vp8", room="6006"), 9, p)

    task_id = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    name = f"{SDKAPPID}_6006__UserId_s_{b64_name('erin')}__UserId_e_main_video.m3u8"
    check_stream_files(rec, name, "video", GREEN, None, 9.0)
    logs = "".join(p.read_text() for p in stack.recorder_logs() if task_id[:8].replace("+", "_") in p.name)
    assert "transcoding it to H.264" in logs


def test_a_platform_sigterm_hands_the_task_over(stack: LocalStack) -> None:
    """SIGTERM is the platform's (Fargate retirement, scale-in), not the customer's: the
    recorder stores what it has and a successor records on as ha1_, with no 302 until Delete."""
    import os
    import signal

    from tests.support.stack import recorder_pid

    async def scenario() -> tuple[str, float]:
        p = await join(stack, "6007", "fay", RED, 440, create=True)
        task_id = (await call(stack.client().CreateCloudRecording, create_request("rec_term", room="6007"))).TaskId
        await asyncio.sleep(6)
        pid = recorder_pid(task_id, stack.run_dir)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        signalled = time.monotonic()
        await call(stack.callbacks.wait, task_id, 306, 40)
        handed = time.monotonic() - signalled
        await asyncio.sleep(6)  # the successor records
        assert not stack.callbacks.of(task_id, 302), "the task went on"
        await stop_and_wait(stack, task_id)
        await p.leave()
        return str(task_id), handed

    task_id, handed = run(scenario)
    print(f"SIGTERM → successor's 306: {handed:.1f} s")
    check_ended(stack, task_id, leave_code=0, playlists=4)
    rec = Recording(stack.boto("s3"), task_id)
    for ha in ("", "ha1_"):
        for kind, hz in (("audio", 440), ("video", None)):
            check_stream_files(rec, f"{ha}{SDKAPPID}_6007__UserId_s_{b64_name('fay')}__UserId_e_main_{kind}.m3u8",
                               kind, RED if kind == "video" else None, hz, 6.0)
    report = json.loads(stack.admin("report", task_id))  # her streams, each one across the hand-over
    assert [(h["From"], h["To"]) for h in report["HandOvers"]] == [(0, 1)]
    assert sorted(s["Kind"] for s in report["Streams"]) == ["audio", "video"]


def test_a_big_task_spreads_over_shard_processes(stack: LocalStack) -> None:
    users = [("gus", RED, 330), ("hal", BLUE, 440), ("ivy", GREEN, 550), ("jon", (200, 200, 0), 660)]

    async def scenario() -> str:
        people = [await join(stack, "6008", u, c, hz, create=i == 0) for i, (u, c, hz) in enumerate(users)]
        return await record_for(stack, create_request("rec_big", room="6008"), 9, *people)

    task_id = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    for user, color, hz in users:  # 8 streams, 4 per process: two processes recorded them
        check_stream_files(rec, f"{SDKAPPID}_6008__UserId_s_{b64_name(user)}__UserId_e_main_video.m3u8",
                           "video", color, None, 9.0)
        check_stream_files(rec, f"{SDKAPPID}_6008__UserId_s_{b64_name(user)}__UserId_e_main_audio.m3u8",
                           "audio", None, hz, 9.0)
    logs = "".join(p.read_text() for p in stack.recorder_logs() if task_id[:8].replace("+", "_") in p.name)
    assert "shard 1 started" in logs and '"shard":1' in logs
    report = json.loads(stack.admin("report", task_id))  # the shard's part of the report joined in
    assert sorted((s["UserId"], s["Kind"]) for s in report["Streams"]) == [
        (user, kind) for user, _, _ in users for kind in ("audio", "video")]


def test_storage_outage_loses_nothing(stack: LocalStack) -> None:
    """The customer's bucket does not exist yet: the files wait in the backup storage, the task
    ends on time (305 Status 1), and once the bucket exists they all reach it (305 Status 2)."""
    bucket = "late-bucket"

    async def scenario() -> str:
        p = await join(stack, "6009", "kim", RED, 440, create=True)
        request = create_request("rec_outage", room="6009")
        request.StorageParams.CloudStorage.Bucket = bucket  # does not exist yet: every upload fails
        task_id = (await call(stack.client().CreateCloudRecording, request)).TaskId
        await asyncio.sleep(6)
        await call(delete, stack, task_id)
        await p.leave()
        await call(wait_for, lambda: task_ended(stack, task_id), 30, "the task to end")
        await call(stack.callbacks.wait, task_id, 305)
        await call(stack.boto("s3").create_bucket, Bucket=bucket)
        return str(task_id)

    task_id = run(scenario)
    wait_for(lambda: len(stack.callbacks.of(task_id, 305)) == 2, 30, "305 Status 2")
    types = [e["EventType"] for e in stack.callbacks.of(task_id)]
    assert 308 in types and types.count(302) == 1 and types.count(304) == 2 and types[-2:] == [305, 305], types
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 305)] == [{"Status": 1}, {"Status": 2}]
    assert stack.callbacks.of(task_id, 302)[0]["EventInfo"]["Payload"] == {"LeaveCode": 0}
    rec = Recording(stack.boto("s3"), task_id, bucket=bucket)
    for kind, hz in (("audio", 440), ("video", None)):
        check_stream_files(rec, f"{SDKAPPID}_6009__UserId_s_{b64_name('kim')}__UserId_e_main_{kind}.m3u8", kind,
                           RED if kind == "video" else None, hz, 6.0)


def test_robot_names_and_the_robots_id_are_no_way_out_of_being_recorded(stack: LocalStack) -> None:
    """`eve` calls herself a robot and publishes: she is recorded all the same. `squat` holds the
    robot's UserId when the task starts: the robot removes her (the later entrant stays, as in
    TRTC), joins and records."""
    async def scenario() -> str:
        eve = await join(stack, "6010", "eve", GREEN, 330, create=True, display="cloudrec-robot:eve")
        squat = await join(stack, "6010", "rec_squat", BLUE, 550)
        task_id = await record_for(stack, create_request("rec_squat", room="6010"), 8, eve)
        await squat.leave()
        return task_id

    task_id = run(scenario)
    rec = Recording(stack.boto("s3"), task_id)
    check_stream_files(rec, f"{SDKAPPID}_6010__UserId_s_{b64_name('eve')}__UserId_e_main_video.m3u8",
                       "video", GREEN, None, 5.0)
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 301)] == [{"Status": 0}]
    logs = "".join(p.read_text() for p in stack.recorder_logs() if task_id[:8].replace("+", "_") in p.name)
    assert "removed a participant that held the robot's id" in logs
