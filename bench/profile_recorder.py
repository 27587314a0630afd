"""Where a single-stream recorder's CPU goes: records N participants (pre-encoded H.264 + Opus
replayed by aiortc publishers, as bench/single_stream.py) and samples the recorder process with
py-spy (`pip install py-spy`; not a dependency of cloudrec) for `--seconds`, then prints the
functions with the most samples, by their own time and with what they call, per thread.

    .venv/bin/python bench/profile_recorder.py [--config 640x360@15] [--count 4] [--seconds 20]
        [--mixed] [--perf] [--py-spy PATH] [--out stacks.txt]

--mixed records them as a mix instead (1280x720@15 out, as bench/mix.py). --perf samples with
Linux perf instead of py-spy and prints the heaviest symbols per thread id, the kernel's
included: where the time is below Python (the event loop's C, futex wake-ups, context
switches), which py-spy shows only as its caller's own time. (py-spy's --native does not do:
it unwinds most of the event-loop thread's stacks to a bogus gc_collect_main frame.) The
x264 in PyAV's wheel is stripped: all of its time shows under one exported name,
x264_8_trellis_coefn, though the mix's preset does no trellis.

Runs inside a network namespace it creates (root), like the other media benches.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.single_stream import CONFIGS, ROOT, encode, local_stack, publishers, recorder_pids, stop_recording
from chalicelib import config
from tests.support import netns

# leaves where a thread waits (py-spy samples some waiting threads as active)
IDLE = re.compile(r"^(Condition\.wait|EpollSelector\.select|Queue\.get|_worker \(concurrent|poll_wait_for_socket|"
                  r"Event\.wait|Thread\.join|_wait_for_tstate_lock|SocketIO\.readinto)")


def summary(stacks: Path, top: int = 25) -> str:
    """py-spy's raw (collapsed) stacks → the heaviest functions by own and by total samples, of
    the samples where the thread was not waiting."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit() or IDLE.search(frames.rpartition(";")[2]):
            continue
        n = int(count)
        samples += n
        parts = frames.split(";")
        threads[parts[0]] += n
        own[parts[-1]] += n
        for frame in set(parts[1:]):
            total[frame] += n
    out = [f"{samples} busy samples"]
    out += ["threads:"] + [f"  {100 * n / samples:5.1f} %  {name}" for name, n in threads.most_common(8)]
    out += ["own time:"] + [f"  {100 * n / samples:5.1f} %  {name}" for name, n in own.most_common(top)]
    out += ["with callees:"] + [f"  {100 * n / samples:5.1f} %  {name}" for name, n in total.most_common(top)]
    return "\n".join(out)


def perf_summary(data: Path, top: int = 40) -> str:
    """perf's heaviest (thread id, library, symbol) triples, by own samples."""
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "pid,dso,sym",
                             "-g", "none", "--stdio"], check=True, capture_output=True, text=True).stdout
    return "\n".join([line for line in report.splitlines() if line.strip() and not line.startswith("#")][:top])


async def profile(label: str, count: int, seconds: float, py_spy: str, out: Path, mixed: bool,
                  perf: bool) -> None:
    _, width, height, fps, bitrate = next(c for c in CONFIGS if c[0] == label)
    clip = encode(Path(tempfile.mkdtemp(prefix="cloudrec-prof-")), label, width, height, fps, bitrate)
    with local_stack(Path(tempfile.mkdtemp(prefix="cloudrec-prof-"))) as stack:
        from tests.support.sdk import create_request

        people = await publishers(stack, "7300", clip, count)
        await asyncio.sleep(2)
        request = create_request("rec_prof", room="7300", **({"RecordMode": 2} if mixed else {}))
        if mixed:
            from tencentcloud.trtc.v20190722 import models

            request.MixTranscodeParams = models.MixTranscodeParams()
            request.MixTranscodeParams.from_json_string(json.dumps({
                "VideoParams": {"Width": 1280, "Height": 720, "Fps": 15, "BitRate": 1500000, "Gop": 2},
                "AudioParams": {"SampleRate": 1, "Channel": 1, "BitRate": 64000}}))
        task_id = (await asyncio.to_thread(stack.client().CreateCloudRecording, request)).TaskId
        await asyncio.sleep(8)
        (pid,) = [p for p in recorder_pids(task_id)  # the recorder, not its keeper
                  if b"keeper" not in Path(f"/proc/{p}/cmdline").read_bytes()]
        command = ["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", str(out), "--", "sleep",
                   str(int(seconds))] if perf else \
            [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200", "--threads",
             "--format", "raw", "--nonblocking", "--output", str(out)]
        await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
        await stop_recording(stack, task_id, people)
    print(f"{'mixed' if mixed else 'single-stream'} recorder, {label} x{count}, {seconds:.0f} s, "
          f"{'perf' if perf else 'py-spy'} (samples in {out}):")
    print(perf_summary(out) if perf else summary(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=CONFIGS[0][0], choices=[c[0] for c in CONFIGS])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--perf", action="store_true", help="Linux perf instead of py-spy: C and kernel time too")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cloudrec-recorder-stacks.txt")
    args = parser.parse_args()
    if not config.CLOUDREC_IN_NETNS.get(os.environ):
        return netns.run_inside("cloudrec-p", [sys.executable, *sys.argv], ROOT)
    asyncio.run(profile(args.config, args.count, args.seconds, args.py_spy, args.out, args.mixed, args.perf))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
