"""The merge tool on a 2-user, 30-minute single-stream recording: wall time, CPU and peak RSS
of `tools/merge.py` remuxing (sizes already right) and re-encoding (-r), against TRTC's way
(its script concatenates a user's TS files and re-encodes them with ffmpeg: libx264
veryfast, AAC), in the same run; and the A/V offset of flash/beep marks in the outputs.

Each user has 640x360@15 video and audio that starts 1 s later; a flash and a beep are
emitted together once a minute.

    .venv/bin/python bench/merge.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from bench.hls_copies import measure, repeat
from chalicelib.naming import TaskNaming, utc17_ms
from tests.support.hls_recording import write_stream

T0 = 1_760_000_000_000
PERIOD_S = 60
MARK_S = 30.0  # the flash and the beep, into each minute
AUDIO_LATE_MS = 1000


def _picture(t: float) -> np.ndarray:
    level = 235 if abs(t - MARK_S) < 1e-6 else 40 + int(t * 3) % 20
    return np.full((360, 640, 3), level, np.uint8)


def _sound(t: np.ndarray) -> np.ndarray:
    late = AUDIO_LATE_MS / 1000
    on = (t + late >= MARK_S) & (t + late < MARK_S + 0.1)
    return np.where(on, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.01 * np.sin(2 * np.pi * 200 * t))


def build(folder: Path, minutes: int) -> int:
    naming = TaskNaming("T", 1400000001, "8848", 1)
    seed_dir = folder / "seed"
    video = write_stream(seed_dir / "v", "v", T0, PERIOD_S, 6, audio=False, width=640, height=360, fps=15,
                         bitrate=600_000, picture=_picture)
    audio = write_stream(seed_dir / "a", "a", T0 + AUDIO_LATE_MS, PERIOD_S, 6, video=False, sound=_sound)
    total = 0
    for user in ("alice", "bob"):
        total += repeat(video, folder, naming.stream_stem(user, "main", "video"), T0, minutes, PERIOD_S * 1000)
        total += repeat(audio, folder, naming.stream_stem(user, "main", "audio"), T0 + AUDIO_LATE_MS - 21,
                        minutes, PERIOD_S * 1000)
    shutil.rmtree(seed_dir)
    return total


def trtc_way(folder: Path, out: Path) -> list[str]:
    """A shell script doing per user what TRTC_Merge.py does (spec §8): cat the TS files, make the
    audio continuous (-copyts, aresample async), delay it by the difference of the first file
    names' times, and re-encode everything (libx264 veryfast at 15 fps, AAC)."""
    lines = ["set -e"]
    for user_dir in sorted({p.name.split("__UserId_e_")[0] for p in folder.glob("*.m3u8")}):
        video = sorted(folder.glob(f"{user_dir}__UserId_e_main_video_*.ts"))
        audio = sorted(folder.glob(f"{user_dir}__UserId_e_main_audio_*.ts"))
        v, a, m4a = out / f"{user_dir}_v.ts", out / f"{user_dir}_a.ts", out / f"{user_dir}_tmp.m4a"
        lines.append(f"cat {' '.join(map(str, video))} > {v}")
        lines.append(f"cat {' '.join(map(str, audio))} > {a}")
        lines.append(f"ffmpeg -hide_banner -loglevel error -y -copyts -i {a} -af aresample=48000:async=1 "
                     f"-c:a aac {m4a}")
        delay = utc17_ms(audio[0].name[-20:-3]) - utc17_ms(video[0].name[-20:-3])  # as TRTC: from the names
        lines.append(f"ffmpeg -hide_banner -loglevel error -y -i {m4a} -i {v} "
                     f"-filter_complex '[0]adelay={delay}:all=1[audio]' -map '[audio]' -map 1:v "
                     f"-c:v libx264 -preset veryfast -r 15 -c:a aac {out / (user_dir + '_av.mp4')}")
    return ["bash", "-c", "\n".join(lines)]


def offsets(path: Path) -> list[float]:
    """Beep onset minus flash time (s) for every mark in the file."""
    with av.open(str(path)) as c:
        lumas = np.array([(float(f.pts * f.time_base), f.to_ndarray(format="gray")[::8, ::8].mean())
                          for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        first = None
        chunks = []
        for f in c.decode(audio=0):
            first = float(f.pts * f.time_base) if first is None else first
            chunks.append(f.to_ndarray()[0])
    loud = np.abs(np.concatenate(chunks)) > 0.2
    onsets = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]])) / rate + (first or 0.0)
    flashes = lumas[lumas[:, 1] > 150, 0]
    return [float(onsets[np.argmin(np.abs(onsets - t))] - t) for t in flashes if len(onsets)]


def _copy_inputs(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).symlink_to(p)
    return dst


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--minutes", type=int, default=30)
    args.add_argument("--dir", default="/dev/shm")
    opts = args.parse_args()
    with tempfile.TemporaryDirectory(dir=opts.dir) as tmp:
        work = Path(tmp)
        rec = work / "rec"
        rec.mkdir()
        started = time.perf_counter()
        total = build(rec, opts.minutes)
        print(f"recording: 2 users x {opts.minutes} min (640x360@15 + AAC, audio 1 s late), "
              f"{total / 1e6:.0f} MB of TS, built in {time.perf_counter() - started:.0f} s")
        merge = [sys.executable, "-m", "tools.merge", "-f"]
        runs = {
            "cloudrec merge (remux)": (merge + [str(_copy_inputs(rec, work / "remux"))], work / "remux"),
            "cloudrec merge (-r 320 180)": (merge + [str(_copy_inputs(rec, work / "enc")), "-r", "320", "180"],
                                            work / "enc"),
        }
        (work / "trtc").mkdir()
        runs["TRTC way (cat + ffmpeg)"] = (trtc_way(rec, work / "trtc"), work / "trtc")
        print(f"{'':30} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12}  A/V offset of the marks (ms)")
        for name, (argv, out) in runs.items():
            wall, cpu, rss = measure(argv)
            found = [o for p in sorted(out.glob("*_av.mp4")) for o in offsets(p)]
            spread = (f"{len(found)} marks, mean {np.mean(found) * 1000:+.1f}, worst {max(found, key=abs) * 1000:+.1f}"
                      if found else "no marks found")
            print(f"{name:30} {wall:7.1f} {cpu:7.1f} {rss:12.0f}  {spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
