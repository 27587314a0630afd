"""Mixed-stream cost: CPU (of one core) and RSS of the recorder composing 2, 4 and 9
participants (1280x720@15 inputs, 320x180@15 beyond 4) into 1280x720 and 1920x1080 at 15 fps,
against an ffmpeg pipeline (decode, scale, xstack, amix, x264, AAC) composing the same
inputs with the same grid geometry and the same x264 preset and bitrate, in the same run.

Runs inside a network namespace it creates (root): `sudo .venv/bin/python bench/mix.py`
(BENCH_CANVAS=1280x720 BENCH_COUNTS=4,9 for issue 16's rows only).

Under each row it prints the CPU of the recorder's busiest threads by thread id; with
BENCH_PYSPY=<path to py-spy> it also dumps the recorder's threads, which names each id
(MainThread is the event loop, mix-video the compositor; ids with no Python name are x264's).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.single_stream import (
    TICKS,
    cpu_ticks,
    encode,
    find_pid,
    local_stack,
    namespace_main,
    publishers,
    recorder_pids,
    rss_mb,
    sample_cpu,
    thread_ticks,
)
from chalicelib import config
from chalicelib.layouts import Participant, grid

CANVASES = ((1280, 720, 1_500_000), (1920, 1080, 3_000_000))
COUNTS = (2, 4, 9)
# narrow it to issue 16's rows: BENCH_CANVAS=1280x720 BENCH_COUNTS=4,9
CANVASES = tuple(c for c in CANVASES if os.environ.get("BENCH_CANVAS", f"{c[0]}x{c[1]}") == f"{c[0]}x{c[1]}")
COUNTS = tuple(int(n) for n in os.environ.get("BENCH_COUNTS", ",".join(map(str, COUNTS))).split(","))

PRESET = config.CLOUDREC_MIX_PRESET.get(os.environ)  # the recorder's, as the stack will start it


def ffmpeg_command(clips: list[Path], width: int, height: int, bitrate: int, out: Path, seconds: float) -> list[str]:
    windows = grid([Participant(f"p{i}") for i in range(len(clips))], (width, height))
    inputs = [arg for clip in clips for arg in ("-re", "-i", str(clip))]
    scaled = ";".join(f"[{i}:v]scale={w.width}:{w.height}[v{i}]" for i, w in enumerate(windows))
    positions = "|".join(f"{w.x}_{w.y}" for w in windows)
    stacked = "".join(f"[v{i}]" for i in range(len(clips)))
    graph = (f"color=black:size={width}x{height}:rate=15[bg];{scaled};"
             f"{stacked}xstack=inputs={len(clips)}:layout={positions}:fill=black[grid];"
             f"[bg][grid]overlay=shortest=1[v];"
             + "".join(f"[{i}:a]" for i in range(len(clips))) + f"amix=inputs={len(clips)}[a]") \
        if len(clips) > 1 else f"[0:v]scale={width}:{height}[v];[0:a]anull[a]"
    return ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph,
            "-map", "[v]", "-map", "[a]", "-r", "15", "-c:v", "libx264", "-preset", PRESET,
            "-tune", "zerolatency", "-b:v", str(bitrate), "-g", "30", "-bf", "0", "-c:a", "aac", "-ac", "2",
            "-b:a", "64000", "-t", str(seconds), "-f", "mpegts", str(out)]


async def measure_ffmpeg(clips: list[Path], width: int, height: int, bitrate: int, seconds: float) -> dict[str, float]:
    out = Path(tempfile.mkdtemp()) / "mix.ts"
    proc = await asyncio.create_subprocess_exec(*ffmpeg_command(clips, width, height, bitrate, out, seconds + 8))
    await asyncio.sleep(5)
    start, t0 = cpu_ticks(proc.pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = 100.0 * (cpu_ticks(proc.pid) - start) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
    rss = rss_mb(proc.pid)
    await proc.wait()
    return {"cpu": cpu, "rss": rss}


async def measure_recorder(stack: object, clips: list[Path], width: int, height: int, bitrate: int, room: str,
                           seconds: float) -> dict[str, float]:
    from tencentcloud.trtc.v20190722 import models

    from tests.support.sdk import create_request, delete

    people = []
    for i, clip in enumerate(clips):
        people += await publishers(stack, room, clip, 1) if i == 0 else await _one(stack, room, clip, i)
    request = create_request(f"rec_mix{room}", room=room, RecordMode=2)
    request.MixTranscodeParams = models.MixTranscodeParams()
    request.MixTranscodeParams.from_json_string(json.dumps({
        "VideoParams": {"Width": width, "Height": height, "Fps": 15, "BitRate": bitrate, "Gop": 2},
        "AudioParams": {"SampleRate": 1, "Channel": 2, "BitRate": 64000}}))
    task_id = (await asyncio.to_thread(stack.client().CreateCloudRecording, request)).TaskId  # type: ignore[attr-defined]
    await asyncio.sleep(8)
    pids = recorder_pids(task_id)
    threads_before, t0 = {(p, t): n for p in pids for t, n in thread_ticks(p).items()}, time.monotonic()
    cpu = await sample_cpu({str(p): p for p in pids}, seconds)
    elapsed = time.monotonic() - t0
    threads = {k: 100.0 * (n - threads_before.get((p, t), 0)) / TICKS / elapsed
               for p in pids for t, n in thread_ticks(p).items() for k in [f"{p}:{t}"]}
    print("    recorder threads: " + ", ".join(f"{k} {v:.1f} %" for k, v in
                                                 sorted(threads.items(), key=lambda kv: -kv[1])[:12] if v >= 0.5))
    if os.environ.get("BENCH_PYSPY"):
        for p in pids:
            dump = await asyncio.create_subprocess_exec(os.environ["BENCH_PYSPY"], "dump", "--native", "--pid", str(p),
                                                        stdout=asyncio.subprocess.PIPE)
            text = (await dump.communicate())[0].decode(errors="replace")
            print("\n".join("    " + line for line in text.splitlines()[:400]))
    rss = sum(rss_mb(p) for p in pids)
    janus = find_pid(b"janus")
    await asyncio.to_thread(delete, stack, task_id)
    while recorder_pids(task_id):
        await asyncio.sleep(0.2)
    for p in people:
        await p.leave()
    return {"cpu": sum(cpu.values()), "rss": rss, "janus_pid": float(janus or 0)}


async def _one(stack: object, room: str, clip: Path, index: int) -> list[object]:
    from aiortc.contrib.media import MediaPlayer

    from tests.support.publisher import Participant as Publisher

    p = Publisher(stack.janus_url, room, f"p{index}")  # type: ignore[attr-defined]
    await p.join()
    player = MediaPlayer(str(clip), decode=False)
    await p.publish_tracks(player.audio, player.video)
    return [p]


async def bench(seconds: float) -> None:
    media = Path(tempfile.mkdtemp(prefix="cloudrec-bench-media-"))
    big = encode(media, "1280x720@15", 1280, 720, 15, "1500k")
    small = encode(media, "320x180@15", 320, 180, 15, "250k")
    with local_stack(Path(tempfile.mkdtemp(prefix="cloudrec-bench-")), CLOUDREC_SEGMENT_S="12") as stack:
        print(f"mixed-stream recorder vs ffmpeg (xstack + amix + x264 {PRESET}), {os.cpu_count()} cores, "
              f"CPU over {seconds:.0f} s (100 % = one core)")
        room = 9000
        for width, height, bitrate in CANVASES:
            for count in COUNTS:
                clips = [big if count <= 4 else small] * count
                room += 1
                ours = await measure_recorder(stack, clips, width, height, bitrate, str(room), seconds)
                theirs = await measure_ffmpeg(clips, width, height, bitrate, seconds)
                label = f"{count} x {'1280x720' if count <= 4 else '320x180'} -> {width}x{height}@15"
                print(f"  {label:32s} cloudrec {ours['cpu']:5.1f} % RSS {ours['rss']:4.0f} MB | "
                      f"ffmpeg {theirs['cpu']:5.1f} % RSS {theirs['rss']:4.0f} MB")


if __name__ == "__main__":
    sys.exit(namespace_main(__file__, bench, 20.0, __doc__.splitlines()[0]))
