"""Lip sync end to end: two publishers flash and beep at the same capture instant every 2 s (one
at 30 fps, one at 15 fps, a second apart), recorded at once as single-stream files with audio
and video in one stream, as single-stream files put together by the merge tool, and as a mix;
in each, a beep must land with its flash (median within ±20 ms, none beyond ±40 ms) once the
recorder has the SFU's first sender reports, and within ±80 ms before."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

from tencentcloud.trtc.v20190722 import models

from chalicelib.naming import b64_name
from tests.support.lipsync import BeepTrack, FlashTrack, Sync, measure
from tests.support.media_checks import Recording
from tests.support.media_scenario import call, run, stop_and_wait
from tests.support.publisher import Participant
from tests.support.sdk import create_request
from tests.support.stack import SDKAPPID, LocalStack
from tools import merge

ROOM = "6201"
PEOPLE = {"fast": (30, 0.0), "slow": (15, 1.0)}  # fps, flash phase (s)
MEDIAN_MS, WORST_MS = 20, 40
EARLY_MS = 80  # before the first sender reports: placed by arrival less each kind's usual hold


def _mixed_request() -> models.CreateCloudRecordingRequest:
    request = create_request("rec_sync_mix", room=ROOM, RecordMode=2)
    request.MixTranscodeParams = models.MixTranscodeParams()
    request.MixTranscodeParams.from_json_string(json.dumps({
        "VideoParams": {"Width": 640, "Height": 360, "Fps": 30, "BitRate": 800000, "Gop": 2},
        "AudioParams": {"SampleRate": 1, "Channel": 1, "BitRate": 64000}}))
    return request


def _download(rec: Recording, names: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = into / name
        path.write_bytes(rec.s3.get_object(Bucket=rec.bucket, Key=rec.dir + name)["Body"].read())
        paths.append(path)
    return paths


def _segments(rec: Recording, playlist: str, into: Path) -> list[Path]:
    return _download(rec, rec.playlist(playlist).segments, into)


def _judge(results: dict[str, Sync]) -> None:
    for where, sync in results.items():
        print(f"lip sync, {where}: {sync}")
    for where, sync in results.items():
        assert len(sync.offsets_ms) >= 3, (where, str(sync))
        assert abs(sync.median) <= MEDIAN_MS and abs(sync.worst) <= WORST_MS, (where, str(sync))
        assert all(abs(o) <= EARLY_MS for o in sync.early_ms), (where, str(sync))


def test_a_beep_lands_with_its_flash_in_every_kind_of_file(stack: LocalStack, tmp_path: Path) -> None:
    epoch = float(math.floor(time.time()))

    async def scenario() -> list[str]:
        people: list[Participant] = []
        for user, (fps, phase) in PEOPLE.items():
            p = Participant(stack.janus_url, ROOM, user)
            await p.join(create_room=not people)
            await p.publish_tracks(BeepTrack(epoch, phase), FlashTrack(epoch, fps, phase))
            people.append(p)
        await asyncio.sleep(1)
        requests = [create_request("rec_sync_av", room=ROOM, AvMerge=1), create_request("rec_sync", room=ROOM),
                    _mixed_request()]
        task_ids = [str((await call(stack.client().CreateCloudRecording, r)).TaskId) for r in requests]
        await asyncio.sleep(12)
        await asyncio.gather(*(stop_and_wait(stack, t) for t in task_ids))
        for p in people:
            await p.leave()
        return task_ids

    together, apart, mixed = run(scenario)
    s3 = stack.boto("s3")
    results: dict[str, Sync] = {}
    rec = Recording(s3, together)
    for user in PEOPLE:
        name = f"{SDKAPPID}_{ROOM}__UserId_s_{b64_name(user)}__UserId_e_main_audio_video.m3u8"
        results[f"{user}, single-stream audio+video"] = measure(_segments(rec, name, tmp_path / f"av-{user}"))
    rec = Recording(s3, apart)
    folder = tmp_path / "merge"
    _download(rec, [n for n in rec.names() if n.endswith((".m3u8", ".ts"))], folder)
    assert merge.main(["-f", str(folder), "-p", "30"]) == 0
    for user in PEOPLE:
        (out,) = [p for p in folder.glob(f"{b64_name(user)}_*_av.mp4")]
        results[f"{user}, merge tool"] = measure([out])
    rec = Recording(s3, mixed)
    (playlist,) = [n for n in rec.names() if n.endswith(".m3u8")]
    results["both, mixed"] = measure(_segments(rec, playlist, tmp_path / "mix"))
    _judge(results)
