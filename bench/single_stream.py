"""Single-stream recorder cost: CPU% (of one core) and RSS of the recorder per recorded A/V
participant at 640x360@15 and 1280x720@30 for 1, 2 and 4 participants, Janus's CPU in the
same run, lost RTP packets and dropped frames, and the time from Create to the first segment
in storage. In the same run, two plain aiortc subscribers of the same streams: the floor of
cloudrec's receive path (H.264 handed out encoded, Opus decoded, nothing written: what the
recorder pays before its own work) for as many participants, and one that decodes everything
(what a recorder that decodes would pay).

BENCH_CONFIGS=640x360@15 BENCH_COUNTS=4 BENCH_QUICK=1 narrow it to one quick comparison.

Publishers replay pre-encoded H.264 + Opus (aiortc MediaPlayer, decode=False) so they do
not eat the CPU being measured. Everything runs inside a network namespace this script
creates (root): `sudo .venv/bin/python bench/single_stream.py [--seconds 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib import config
from tests.support import netns

ROOT = Path(__file__).resolve().parents[1]

SEGMENT_S = 6.0
CONFIGS = (("640x360@15", 640, 360, 15, "800k"), ("1280x720@30", 1280, 720, 30, "2500k"))
TICKS = os.sysconf("SC_CLK_TCK")


def encode(media_dir: Path, label: str, width: int, height: int, fps: int, bitrate: str) -> Path:
    """A 2-minute clip of moving test pattern (H.264 baseline, keyframe every 2 s) and an Opus tone
    (longer than any measurement: aiortc's passthrough player bursts frames when it loops),
    in MPEG-TS: aiortc's passthrough sender needs Annex-B H.264 (Matroska/MP4 carry AVCC)."""
    path = media_dir / f"{label.replace('@', '_')}.ts"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "120",
                    "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", str(2 * fps),
                    "-bf", "0", "-b:v", bitrate, "-c:a", "libopus", "-b:a", "32k", "-ac", "1",
                    "-f", "mpegts", str(path)],
                   check=True)
    return path


def cpu_ticks(pid: int) -> int:
    return cpu_ticks_of(Path(f"/proc/{pid}/stat"))


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks of each thread of `pid`, by "name/tid" (the main thread's tid is the pid)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            out[f"{name}/{task.name}"] = cpu_ticks_of(task / "stat")
        except OSError:
            continue
    return out


def cpu_ticks_of(stat: Path) -> int:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def recorder_pids(task_id: str) -> list[int]:
    """The recorder of a task and its shard processes (they share the task id in their environment)."""
    needle = f"CLOUDREC_TASK_ID={task_id}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"recorder_container" in (proc / "cmdline").read_bytes() and \
                        needle in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def find_pid(pattern: bytes, env_needle: bytes | None = None) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if pattern in (proc / "cmdline").read_bytes() and (
                    env_needle is None or env_needle in (proc / "environ").read_bytes()):
                return int(proc.name)
        except OSError:
            continue
    return None


async def sample_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    start = {k: cpu_ticks(p) for k, p in pids.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    return {k: 100.0 * (cpu_ticks(p) - start[k]) / TICKS / elapsed for k, p in pids.items()}


@contextmanager
def local_stack(run_dir: Path, **extra_env: str) -> Iterator[Any]:
    """The local stack as the media tests run it (Janus on the namespace's v0), with a bucket."""
    from tests.support.media import BUCKET, media_env
    from tests.support.stack import running_stack

    # one dedicated recorder process per task (no warm workers): its own CPU, found by its environment
    env = {**media_env(), "CLOUDREC_SEGMENT_S": str(SEGMENT_S), "CLOUDREC_STREAMS_PER_PROCESS": "16",
           "CLOUDREC_WARM_WORKERS": "0", "CLOUDREC_CLAIM_WAIT_S": "0", **extra_env}
    with running_stack(run_dir, **env) as stack:
        stack.boto("s3").create_bucket(Bucket=BUCKET)
        yield stack


async def publishers(stack: Any, room: str, clip: Path, count: int) -> list[Any]:
    from aiortc.contrib.media import MediaPlayer

    from tests.support.publisher import Participant

    people = []
    for i in range(count):
        p = Participant(stack.janus_url, room, f"p{i}")
        await p.join(create_room=i == 0)
        player = MediaPlayer(str(clip), decode=False)
        await p.publish_tracks(player.audio, player.video)
        people.append(p)
    return people


def stream_stats(log_path: Path) -> dict[str, int]:
    totals = {"rtp_received": 0, "rtp_lost": 0, "video_frames": 0, "video_dropped": 0, "video_waiting": 0}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"stream stats"' in line:
            record = json.loads(line)
            for key in totals:
                totals[key] += int(record.get(key, 0))
    return totals


async def stop_recording(stack: Any, task_id: str, people: list[Any]) -> Path | None:
    """Delete the task, wait for its recorder processes to exit, let the publishers go; the
    recorder's log (with its stream stats), if there is one."""
    from tests.support.sdk import delete

    await asyncio.to_thread(delete, stack, task_id)
    while recorder_pids(task_id):
        await asyncio.sleep(0.2)
    for p in people:
        await p.leave()
    return next(stack.run_dir.glob(f"recorders/recorder-*{task_id[:10].replace('+', '_')}*"), None)


async def measure_recorder(stack: Any, clip: Path, count: int, room: str, seconds: float) -> dict[str, Any]:
    from tests.support.media_checks import Recording
    from tests.support.sdk import create_request

    people = await publishers(stack, room, clip, count)
    await asyncio.sleep(2)
    created = time.monotonic()
    task_id = (await asyncio.to_thread(stack.client().CreateCloudRecording,
                                       create_request(f"rec_{room}", room=room))).TaskId
    s3 = stack.boto("s3")
    first_segment = None
    while time.monotonic() - created < 60:
        names = await asyncio.to_thread(lambda: Recording(s3, task_id).names())
        if any(n.endswith(".ts") for n in names):
            first_segment = time.monotonic() - created
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)
    recorders = recorder_pids(task_id)
    janus = find_pid(b"janus")
    assert recorders and janus
    cpu = await sample_cpu({**{f"r{p}": p for p in recorders}, "janus": janus}, seconds)
    rss = sum(rss_mb(p) for p in recorders)
    log = await stop_recording(stack, task_id, people)
    stats = stream_stats(log) if log else {}
    return {"cpu": sum(v for k, v in cpu.items() if k.startswith("r")), "processes": len(recorders),
            "janus": cpu["janus"], "rss": rss, "first_segment": first_segment, **stats}


async def measure_baseline(stack: Any, clip: Path, count: int, room: str, seconds: float,
                           receive_only: bool = False) -> dict[str, Any]:
    """A plain aiortc subscriber in its own process: receive (and decode, unless `receive_only`:
    then the floor of the recorder's own receive path), write nothing."""
    people = await publishers(stack, room, clip, count)
    await asyncio.sleep(2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("decode_subscriber.py")),
        *(["--receive-only"] if receive_only else []), stack.janus_url, room,
        *[f"p{i}" for i in range(count)], cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    await asyncio.sleep(5)
    cpu = await sample_cpu({"baseline": proc.pid}, seconds)
    proc.terminate()
    await proc.wait()
    for p in people:
        await p.leave()
    return {"cpu": cpu["baseline"]}


def slope(points: list[tuple[int, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


COUNTS = tuple(int(c) for c in os.environ.get("BENCH_COUNTS", "1,2,4").split(","))  # e.g. BENCH_COUNTS=4
LABELS = os.environ.get("BENCH_CONFIGS", ",".join(c[0] for c in CONFIGS)).split(",")  # BENCH_CONFIGS=640x360@15


async def bench(seconds: float) -> None:
    media = Path(tempfile.mkdtemp(prefix="cloudrec-bench-media-"))
    clips = {label: encode(media, label, w, h, fps, br) for label, w, h, fps, br in CONFIGS if label in LABELS}
    with local_stack(Path(tempfile.mkdtemp(prefix="cloudrec-bench-"))) as stack:
        print(f"single-stream recorder, {os.cpu_count()} cores, segments {SEGMENT_S:.0f} s, "
              f"CPU over {seconds:.0f} s (100 % = one core)")
        for index, (label, *_) in enumerate(CONFIGS):
            if label not in LABELS:
                continue
            rows = []
            for count in COUNTS:
                room = str(7000 + 10 * index + count)
                r = await measure_recorder(stack, clips[label], count, room, seconds)
                rows.append((count, r))
                if not r.get("video_frames"):
                    raise SystemExit(f"{label} x{count}: no video reached the recorder; the figures would be wrong")
                print(f"  {label} x{count}: recorder {r['cpu']:5.1f} % ({r['cpu'] / count:4.1f} %/participant, "
                      f"{r['processes']} process), "
                      f"RSS {r['rss']:5.0f} MB, Janus {r['janus']:4.1f} %, first segment "
                      f"{r['first_segment']:.1f} s, RTP lost {r.get('rtp_lost')} of {r.get('rtp_received')}, "
                      f"frames lost {r.get('video_dropped')} of {r.get('video_frames')} "
                      f"({r.get('video_waiting')} before the first keyframe)")
            if len(rows) > 1:
                print(f"  {label}: slope {slope([(c, r['cpu']) for c, r in rows]):.1f} % per participant")
            floor = []
            for count in COUNTS:
                f = await measure_baseline(stack, clips[label], count, str(7100 + 10 * index + count), seconds,
                                           receive_only=True)
                floor.append((count, f["cpu"]))
            print(f"  {label} floor (aiortc receive only: H.264 passed through, Opus decoded, nothing written) "
                  + ", ".join(f"x{c} {cpu:.1f} %" for c, cpu in floor)
                  + (f": slope {slope(floor):.1f} % per participant" if len(floor) > 1 else ""))
            if os.environ.get("BENCH_QUICK"):
                continue
            base = await measure_baseline(stack, clips[label], 2, str(7009 + 10 * index), seconds)
            print(f"  {label} baseline (aiortc receive + decode, nothing written) x2: "
                  f"{base['cpu']:5.1f} % ({base['cpu'] / 2:4.1f} %/participant)")


def namespace_main(script: str, run: Callable[[float], Awaitable[None]], default_seconds: float,
                   description: str) -> int:
    """A bench's entry point: parse --seconds, re-run inside a fresh network namespace, run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=default_seconds)
    args = parser.parse_args()
    if not config.CLOUDREC_IN_NETNS.get(os.environ):
        return netns.run_inside("cloudrec-b", [sys.executable, script, "--seconds", str(args.seconds)], ROOT)
    asyncio.run(run(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(namespace_main(__file__, bench, 20.0, __doc__.splitlines()[0]))
