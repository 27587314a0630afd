"""Start latency: Create → the robot in its Janus room (the time on the recorder's 301, EventMsTs),
one Create at a time and as a burst in one second, through the warm fleet and — the baseline,
measured in the same run — with every recording on a dedicated recorder started at Create (the
path before the fleet: CLOUDREC_CLAIM_WAIT_S=0, no workers).

Starts its own local stacks on free ports: `.venv/bin/python bench/start_latency.py
[--creates 50] [--burst 20]`. No media moves, so no network namespace is needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.janus_http import JanusHttp
from tests.support.sdk import create_request, delete
from tests.support.stack import LocalStack, running_stack

MODES: dict[str, dict[str, str]] = {
    "warm fleet (2 workers)": {},
    "dedicated recorder at Create (baseline)": {"CLOUDREC_CLAIM_WAIT_S": "0", "CLOUDREC_WARM_WORKERS": "0"},
}


def _create(stack: LocalStack, user: str, room: str) -> tuple[str, float]:
    at = time.time()
    return str(stack.client().CreateCloudRecording(create_request(user, room=room)).TaskId), at


def _joined_after(stack: LocalStack, task_id: str, at: float) -> float:
    event = stack.callbacks.wait(task_id, 301, 120)
    return float(event["EventInfo"]["EventMsTs"]) / 1000 - at


def _stop(stack: LocalStack, task_ids: list[str]) -> None:
    for task_id in task_ids:
        delete(stack, task_id)
    for task_id in task_ids:
        stack.callbacks.wait(task_id, 302, 60)
    time.sleep(2)  # the recorders' exits settle before the next measurement


def _summary(seconds: list[float]) -> str:
    s = sorted(seconds)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {statistics.median(s):5.2f} s   p95 {p95:5.2f} s   max {s[-1]:5.2f} s   (n={len(s)})"


def measure(env: dict[str, str], creates: int, burst: int) -> dict[str, Any]:
    with running_stack(Path(tempfile.mkdtemp(prefix="bench-start-")), **env) as stack:
        janus = JanusHttp(stack.janus_url)
        rooms = [str(7400 + i) for i in range(max(burst, 1))]
        for room in rooms:
            janus.create_room(room)
        janus.close()  # the rooms stay; an idle session would time out
        one_by_one = []
        for i in range(creates):
            task_id, at = _create(stack, f"rec_one_{i}", rooms[0])
            one_by_one.append(_joined_after(stack, task_id, at))
            _stop(stack, [task_id])
        with ThreadPoolExecutor(burst) as pool:
            started = list(pool.map(lambda r: _create(stack, f"rec_burst_{r}", r), rooms[:burst]))
        burst_s = [_joined_after(stack, task_id, at) for task_id, at in started]
        handles = [str((stack.task_item(t) or {}).get("launch_handle", {}).get("S", "")) for t, _ in started]
        warm = sum(h.startswith("worker:") for h in handles)
        _stop(stack, [t for t, _ in started])
        return {"one": one_by_one, "burst": burst_s, "warm": warm}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=50)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    results = {mode: measure(env, args.creates, args.burst) for mode, env in MODES.items()}
    print(f"\nCreate → robot in the room, {args.creates} one at a time and a burst of {args.burst} in one second")
    for mode, r in results.items():
        print(f"{mode}\n  one at a time  {_summary(r['one'])}\n  burst          {_summary(r['burst'])}"
              f"   {r['warm']} of {args.burst} on warm workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
