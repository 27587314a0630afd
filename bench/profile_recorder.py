"""Where a single-stream recorder's CPU goes: records N participants (pre-encoded H.264 + Opus
replayed by aiortc publishers, as bench/single_stream.py) and samples the recorder process with
py-spy (`pip install py-spy`; not a dependency of cloudrec) for `--seconds`, then prints the
functions with the most samples, by their own time and with what they call, per thread.

    .venv/bin/python bench/profile_recorder.py [--config 640x360@15] [--count 4] [--seconds 20]
        [--mixed] [--native] [--py-spy PATH] [--out stacks.txt]

--mixed records them as a mix instead (1280x720@15 out, as bench/mix.py).

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


async def profile(label: str, count: int, seconds: float, py_spy: str, out: Path, mixed: bool,
                  native: bool) -> None:
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
        await asyncio.to_thread(subprocess.run, [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                                 "--rate", "200", "--threads", "--format", "raw",
                                                 *(["--native"] if native else ["--nonblocking"]),
                                                 "--output", str(out)], check=True, capture_output=True)
        await stop_recording(stack, task_id, people)
    print(f"{'mixed' if mixed else 'single-stream'} recorder, {label} x{count}, {seconds:.0f} s, "
          f"py-spy (stacks in {out}):")
    print(summary(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=CONFIGS[0][0], choices=[c[0] for c in CONFIGS])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--native", action="store_true", help="C frames too (py-spy pauses the recorder to sample)")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cloudrec-recorder-stacks.txt")
    args = parser.parse_args()
    if not config.CLOUDREC_IN_NETNS.get(os.environ):
        return netns.run_inside("cloudrec-p", [sys.executable, *sys.argv], ROOT)
    asyncio.run(profile(args.config, args.count, args.seconds, args.py_spy, args.out, args.mixed, args.native))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
