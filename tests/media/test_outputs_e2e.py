"""After the recording, end to end on the local stack: the recorder's markers, the event
pump's S3 trigger, the MP4/AAC handler, the VOD stand-in and the signed callbacks 310–312 —
the same handlers Lambda runs. Files are judged with PyAV."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import av

from chalicelib.naming import b64_name
from tests.support.media_checks import Recording, middle_color, tone_hz
from tests.support.media_scenario import RED, call, join, run, stop_and_wait
from tests.support.sdk import create_request, describe
from tests.support.stack import SDKAPPID, LocalStack

SECONDS = 9


def _mp4(rec: Recording, name: str) -> tuple[Path, dict[str, Any]]:
    path = rec.download(name)
    with av.open(str(path)) as c:
        info = {s.type: {"codec": s.codec_context.name, "duration": float(s.duration * s.time_base)}
                for s in c.streams}
    return path, info


def test_hls_plus_mp4_single_stream(stack: LocalStack) -> None:
    async def scenario() -> str:
        alice = await join(stack, "6501", "alice", RED, 440, create=True)
        task_id = (await call(stack.client().CreateCloudRecording,
                              create_request("rec_mp4", room="6501", OutputFormat=1))).TaskId
        started = time.monotonic()
        while not (await call(describe, stack, task_id)).StorageFileList:
            await asyncio.sleep(0.5)
        await asyncio.sleep(SECONDS - (time.monotonic() - started))
        await stop_and_wait(stack, task_id)
        await alice.leave()
        return str(task_id)

    task_id = run(scenario)
    event = stack.callbacks.wait(task_id, 310, timeout=60)["EventInfo"]["Payload"]
    name = f"{SDKAPPID}_6501__UserId_s_{b64_name('alice')}__UserId_e_main.mp4"
    assert event["Status"] == 0 and event["FileList"] == [name]
    (message,) = event["FileMessage"]
    assert (message["UserId"], message["MediaId"], message["TrackType"]) == ("alice", "main", "audio_video")
    rec = Recording(stack.boto("s3"), task_id)
    assert name in rec.names() and any(n.endswith(".m3u8") for n in rec.names())  # HLS kept (format 1)
    path, info = _mp4(rec, name)
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert abs(info["video"]["duration"] - (message["EndTimeStamp"] - message["StartTimeStamp"]) / 1000) < 1
    assert SECONDS - 3 <= info["video"]["duration"] <= SECONDS + 3
    assert all(abs(a - b) < 40 for a, b in zip(middle_color(path), RED, strict=True))
    assert abs(tone_hz(path) - 440) < 5
    types = [e["EventType"] for e in stack.callbacks.of(task_id)]
    assert types.index(305) < types.index(310)  # the MP4 follows the HLS upload


def test_mixed_mp4_only_replaces_the_hls(stack: LocalStack) -> None:
    async def scenario() -> str:
        alice = await join(stack, "6502", "alice", RED, 440, create=True)
        task_id = (await call(stack.client().CreateCloudRecording,
                              create_request("rec_mix_mp4", room="6502", RecordMode=2, OutputFormat=3))).TaskId
        while not (await call(describe, stack, task_id)).StorageFileList:
            await asyncio.sleep(0.5)
        await asyncio.sleep(4)
        await stop_and_wait(stack, task_id)
        await alice.leave()
        return str(task_id)

    task_id = run(scenario)
    event = stack.callbacks.wait(task_id, 310, timeout=60)["EventInfo"]["Payload"]
    assert event["FileList"] == [f"{SDKAPPID}_6502.mp4"] and event["FileMessage"][0]["MediaId"] == "mix"
    rec = Recording(stack.boto("s3"), task_id)
    assert rec.names() == [f"{SDKAPPID}_6502.mp4"]  # format 3: the HLS is gone once the MP4 is stored
    _, info = _mp4(rec, f"{SDKAPPID}_6502.mp4")
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"


def test_vod_task_commits_the_mp4(stack: LocalStack) -> None:
    async def scenario() -> tuple[str, Any]:
        alice = await join(stack, "6503", "alice", RED, 440, create=True)
        req = create_request("rec_vod", room="6503")
        body = json.loads(req.to_json_string())
        body["StorageParams"] = {"CloudVod": {"TencentVod": {"MediaType": 0, "ClassId": 3,
                                                             "SourceContext": "lesson-42"}}}
        req.from_json_string(json.dumps(body))
        task_id = (await call(stack.client().CreateCloudRecording, req)).TaskId
        await asyncio.sleep(SECONDS)
        mid = await call(describe, stack, task_id)
        await stop_and_wait(stack, task_id)
        await alice.leave()
        return str(task_id), mid

    task_id, mid = run(scenario)
    assert mid.StorageFileList == []  # VOD tasks list no files (as TRTC)
    stack.callbacks.wait(task_id, 312, timeout=60)
    (commit,) = [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 311)]
    assert commit["Status"] == 0 and commit["TencentVod"]["FileId"]
    assert commit["TencentVod"]["CacheFile"] == f"{SDKAPPID}_6503__UserId_s_{b64_name('alice')}__UserId_e_main.mp4"
    url = commit["TencentVod"]["VideoUrl"]
    bucket, key = url.split("/", 4)[3], url.split("/", 4)[4]
    path = Path(tempfile.mkdtemp()) / "vod.mp4"
    path.write_bytes(stack.boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    with av.open(str(path)) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 312)] == [{"Status": 0}]
