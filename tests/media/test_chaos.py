"""Faults injected into the real stack, with production timing (20 s leases, a 15 s sweep), each
test measuring what was lost: the recorder SIGKILLed mid-recording; the customer's storage (a
moto server of its own) frozen for a minute while the recorder is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import boto3
import pytest

from chalicelib import config
from chalicelib.naming import b64_name
from tests.support.media import BUCKET, SEGMENT_S, media_env
from tests.support.media_checks import Recording, utc17_ms
from tests.support.media_scenario import BLUE, RED, call, join, run, stop_and_wait
from tests.support.sdk import create_request, delete
from tests.support.stack import SDKAPPID, LocalStack, free_port, processes_of, recorder_pid, running_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_TIMING = {"CLOUDREC_HEARTBEAT_S": "5", "CLOUDREC_LEASE_S": "20", "CLOUDREC_LAUNCH_GRACE_S": "30",
                     "CLOUDREC_LOCAL_SCHEDULE_S": "15"}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """The customer's storage: a moto server apart from the stack's AWS emulation, so that it
    alone can fail."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("storage") / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    try:
        wait_for(lambda: _answers(proc.url), 30, "the customer's storage")  # type: ignore[attr-defined]
        _s3(proc).create_bucket(Bucket=BUCKET)
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        log.close()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/moto-api/", timeout=2).close()  # noqa: S310 (http, built above)
        return True
    except OSError:
        return False


def _s3(storage: subprocess.Popen[bytes]) -> Any:
    return boto3.client("s3", endpoint_url=storage.url, region_name="us-east-1",  # type: ignore[attr-defined]
                        aws_access_key_id="local", aws_secret_access_key="local")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, storage: subprocess.Popen[bytes]) -> Iterator[LocalStack]:
    assert config.CLOUDREC_IN_NETNS.get(os.environ), "tests/media run inside a network namespace only"
    env = {**media_env(), **PRODUCTION_TIMING, "CLOUDREC_JANUS_RTP_PORTS": "30100-30199",
           "CLOUDREC_STORAGE_ENDPOINT": storage.url}  # type: ignore[attr-defined]
    with running_stack(tmp_path_factory.mktemp("chaos-stack"), **env) as local:
        yield local


def _span(rec: Recording, name: str) -> tuple[int, int]:
    """First and last instant (Unix ms) a playlist's segments cover."""
    pl = rec.playlist(name)
    return utc17_ms(pl.segments[0]), utc17_ms(pl.segments[-1]) + round(pl.durations[-1] * 1000)


def test_a_killed_recorder_is_replaced_within_seconds_and_loses_at_most_its_open_segment(
        stack: LocalStack, storage: subprocess.Popen[bytes], tmp_path: Path) -> None:
    people = (("una", RED, 440), ("vic", BLUE, 660))

    async def scenario() -> tuple[str, float, float]:
        publishers = [await join(stack, "7001", user, color, hz, create=i == 0)
                      for i, (user, color, hz) in enumerate(people)]
        task_id = str((await call(stack.client().CreateCloudRecording, create_request("rec_kill", room="7001"))).TaskId)
        await call(wait_for, lambda: len(stack.callbacks.of(task_id, 307)) >= 4, 30, "both users' first files")
        await asyncio.sleep(SEGMENT_S * 2)
        pid = recorder_pid(task_id, stack.run_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.time()
        await call(stack.callbacks.wait, task_id, 306, 30)
        replaced = time.time() - killed
        await asyncio.sleep(SEGMENT_S * 3)  # the successor records
        await stop_and_wait(stack, task_id)
        for p in publishers:
            await p.leave()
        return task_id, killed, replaced

    task_id, killed, replaced = run(scenario)
    rec = Recording(_s3(storage), task_id)
    gaps, starts = [], []
    for user, _, _ in people:
        for kind in ("audio", "video"):
            name = f"{SDKAPPID}_7001__UserId_s_{b64_name(user)}__UserId_e_main_{kind}.m3u8"
            assert rec.playlist(name).ended, "the successor ended the dead recorder's playlist"
            assert rec.playlist("ha1_" + name).ended
            _, dead_end = _span(rec, name)
            successor_start, _ = _span(rec, "ha1_" + name)
            gaps.append((successor_start - dead_end) / 1000)
            starts.append(successor_start / 1000 - killed)
    print(f"SIGKILL → 306: {replaced:.1f} s; → successor's first sample: {max(starts):.1f} s; "
          f"media lost per stream: {', '.join(f'{g:.1f}' for g in gaps)} s")
    assert max(starts) <= 10, "the successor writes within 10 s of the kill"
    assert max(gaps) <= SEGMENT_S + 10, "lost: at most the open segment and the 10 s to replace the recorder"
    stack.callbacks.wait(task_id, 302)
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 302)] == [{"LeaveCode": 0}], \
        "the task ended once, by Delete"
    logs = "".join(p.read_text() for p in stack.recorder_logs() if "ha1" in p.name)
    assert "removed a robot with this id" in logs, "the dead robot's id was cleared, not waited out"

    # the merge tool stitches ha0 and ha1 into one timeline per user
    folder = tmp_path / "merge"
    folder.mkdir()
    for name in rec.names():
        (folder / name).write_bytes(rec.download(name).read_bytes())
    subprocess.run([sys.executable, "-m", "tools.merge", "-f", str(folder), "-m", "1"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    for user, _, _ in people:
        merged = sorted(folder.glob(f"{b64_name(user)}_*_av.mp4"))  # named as written in the files
        assert len(merged) == 1, sorted(p.name for p in folder.iterdir())
        first, _ = _span(rec, f"{SDKAPPID}_7001__UserId_s_{b64_name(user)}__UserId_e_main_video.m3u8")
        _, last = _span(rec, f"ha1_{SDKAPPID}_7001__UserId_s_{b64_name(user)}__UserId_e_main_video.m3u8")
        with av.open(str(merged[0])) as c:
            seconds = float(c.duration or 0) / av.time_base
            assert {s.type for s in c.streams} == {"audio", "video"}
        assert abs(seconds - (last - first) / 1000) <= 1.5, (seconds, (last - first) / 1000)


OUTAGE_S = 60


def test_a_minute_without_storage_and_a_killed_recorder_lose_no_segment(
        stack: LocalStack, storage: subprocess.Popen[bytes]) -> None:
    """The customer's storage freezes (SIGSTOP: connections hang, as behind a black hole); the
    recorder is killed during the outage and the task deleted before it ends. Every file goes
    to the backup meanwhile: the task ends on time with 305 Status 1, and once the storage is
    back every segment and playlist reaches it (305 Status 2)."""

    async def scenario() -> tuple[str, float]:
        p = await join(stack, "7002", "wes", RED, 440, create=True)
        task_id = str((await call(stack.client().CreateCloudRecording, create_request("rec_dark", room="7002"))).TaskId)
        await call(wait_for, lambda: len(stack.callbacks.of(task_id, 307)) >= 2, 30, "the first files")
        os.kill(storage.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        await asyncio.sleep(SEGMENT_S * 2)
        pid = recorder_pid(task_id, stack.run_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await call(stack.callbacks.wait, task_id, 306, 30)
        await asyncio.sleep(SEGMENT_S * 3)  # the successor records into the backup
        await call(delete, stack, task_id)
        await p.leave()
        await call(wait_for, lambda: stack.callbacks.of(task_id, 305), OUTAGE_S, "305 while the storage is out")
        assert time.monotonic() - frozen < OUTAGE_S, "the task ended during the outage"
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - frozen)))
        os.kill(storage.pid, signal.SIGCONT)
        return task_id, time.monotonic()

    task_id, back = run(scenario)
    wait_for(lambda: len(stack.callbacks.of(task_id, 305)) == 2, 120, "305 Status 2")
    print(f"storage back → everything delivered (305 Status 2): {time.monotonic() - back:.1f} s")
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 305)] == [{"Status": 1}, {"Status": 2}]
    assert stack.callbacks.of(task_id, 308), "the storage's failure was reported"
    rec = Recording(_s3(storage), task_id)
    assert stack.boto("s3").list_objects_v2(Bucket="cloudrec-internal", Prefix=f"backup/{task_id}/")["KeyCount"] == 0
    counted = 0
    for ha in ("", "ha1_"):
        for kind in ("audio", "video"):
            pl = rec.playlist(f"{ha}{SDKAPPID}_7002__UserId_s_{b64_name('wes')}__UserId_e_main_{kind}.m3u8")
            assert pl.ended and pl.segments
            assert set(pl.segments) <= set(rec.names()), "every segment a playlist lists is stored"
            counted += len(pl.segments)
    print(f"{counted} segments, all in the customer's bucket")


def test_ten_seconds_without_the_aws_emulation_lose_nothing(stack: LocalStack, storage: subprocess.Popen[bytes]) -> None:
    """DynamoDB, SQS and the internal bucket (the stack's moto server) freeze for 10 s while a
    task records: the recorder records on (no failover), its events arrive late but all of them,
    and the recording has no hole."""
    aws = next(pid for pid in processes_of(stack.run_dir) if b"aws_emulation" in Path(f"/proc/{pid}/cmdline").read_bytes())

    async def scenario() -> str:
        p = await join(stack, "7003", "xia", BLUE, 550, create=True)
        task_id = str((await call(stack.client().CreateCloudRecording, create_request("rec_aws", room="7003"))).TaskId)
        await call(wait_for, lambda: len(stack.callbacks.of(task_id, 307)) >= 2, 30, "the first files")
        os.kill(aws, signal.SIGSTOP)
        try:
            await asyncio.sleep(10)
        finally:
            os.kill(aws, signal.SIGCONT)
        await asyncio.sleep(SEGMENT_S * 2)
        await stop_and_wait(stack, task_id)
        await p.leave()
        return task_id

    task_id = run(scenario)
    stack.callbacks.wait(task_id, 305)
    types = [e["EventType"] for e in stack.callbacks.of(task_id)]
    assert 306 not in types and types.count(301) == 1 and types.count(302) == 1, types
    assert [e["EventInfo"]["Payload"] for e in stack.callbacks.of(task_id, 305)] == [{"Status": 0}]
    rec = Recording(_s3(storage), task_id)
    for kind in ("audio", "video"):
        pl = rec.playlist(f"{SDKAPPID}_7003__UserId_s_{b64_name('xia')}__UserId_e_main_{kind}.m3u8")
        first, last = _span(rec, pl.key.rsplit("/", 1)[1])
        recorded = sum(pl.durations)
        assert pl.ended and "#EXT-X-DISCONTINUITY" not in pl.text
        assert recorded >= (last - first) / 1000 - 0.5, f"{kind}: {recorded:.1f} s over {(last - first) / 1000:.1f} s"
