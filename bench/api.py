"""API latency: p50/p99 of DescribeCloudRecording at 20 req/s and at the highest rate the
local stack sustains, with two floors measured in the same run: a DynamoDB GetItem against
the same AWS emulation, and an API request rejected before any storage access.

Starts its own local stack on free ports: `make bench-api` (or `.venv/bin/python bench/api.py`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from chalicelib.signing import sign_tc3
from chalicelib.usersig import gen_usersig
from tests.support.stack import LocalStack, free_port, running_stack

APP, SECRET_ID, SECRET_KEY, SIG_KEY = 1400000009, "AKIDBENCH", "bench-secret", "bench-sig"


class Caller:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
        return self.local.s  # type: ignore[no-any-return]

    def call(self, action: str, params: dict[str, object], signed: bool = True) -> dict[str, object]:
        body, ts = json.dumps(params).encode(), int(time.time())
        headers = {"Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2019-07-22",
                   "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou"}
        if signed:
            headers["Authorization"] = sign_tc3(SECRET_ID, SECRET_KEY, "POST", self.endpoint, "application/json",
                                                body, ts)
        resp = self.session().post(f"http://{self.endpoint}/", data=body, headers=headers, timeout=10)
        return resp.json()["Response"]  # type: ignore[no-any-return]


def percentiles(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {qs[49]:7.1f} ms   p99 {qs[98]:7.1f} ms"


class Recorder:
    """Latencies (ms) and failures of calls made from several threads."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self._lock = threading.Lock()

    def time(self, fn: Callable[[], bool], since: float) -> None:
        ok = fn()
        elapsed = (time.perf_counter() - since) * 1000
        with self._lock:
            self.latencies.append(elapsed)
            self.errors += 0 if ok else 1


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def paced(fn: Callable[[], bool], rate: float, seconds: float, workers: int = 32) -> tuple[list[float], int]:
    """Open loop: calls are scheduled every 1/rate s and timed from their scheduled start, so a
    server that falls behind shows its queueing (no coordinated omission). A pool of callers
    with kept-alive connections keeps the client's own cost low."""
    count = int(rate * seconds)
    start = time.perf_counter() + 0.2
    slots = iter(range(count))
    lock = threading.Lock()
    record = Recorder()

    def worker() -> None:
        while True:
            with lock:
                i = next(slots, None)
            if i is None:
                return
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            record.time(fn, since=due)

    _run_threads(worker, workers)
    return record.latencies, record.errors


def closed_loop(fn: Callable[[], bool], workers: int, seconds: float) -> tuple[float, list[float], int]:
    record = Recorder()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < stop:
            record.time(fn, since=time.perf_counter())

    t0 = time.perf_counter()
    _run_threads(worker, workers)
    return len(record.latencies) / (time.perf_counter() - t0), record.latencies, record.errors


def bench_task(stack: LocalStack) -> tuple[Caller, str]:
    """A caller with its own app (no rate limit to speak of) and a task to describe."""
    stack.admin("add-app", "--sdkappid", str(APP), "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY,
                "--usersig-key", SIG_KEY, "--janus-url", stack.env["CLOUDREC_JANUS_URL"], "--room-namespace",
                "--qps", "100000")
    caller = Caller(stack.api_endpoint)
    created = caller.call("CreateCloudRecording", {
        "SdkAppId": APP, "RoomId": "1", "UserId": "bench",
        "UserSig": gen_usersig(APP, SIG_KEY, "bench", int(time.time())),
        "RecordParams": {"RecordMode": 1, "MaxIdleTime": 86400},
        "StorageParams": {"CloudStorage": {"Vendor": 1, "Region": "us-east-1", "Bucket": "bench-bucket",
                                           "AccessKey": "a", "SecretKey": "s"}}})
    return caller, str(created["TaskId"])


def stack_processes(stack_pid: int) -> dict[str, int]:
    """The local stack's API server and AWS emulation, children of its process."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == stack_pid:
            for name, needle in (("API server", b"api_server.py"), ("AWS emulation", b"aws_emulation")):
                if needle in cmdline:
                    found[name] = int(proc.name)
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_call(fn: Callable[[], bool], processes: dict[str, int], calls: int = 600) -> str:
    """CPU time each process spends per call, one caller at a time: steadier than throughput on
    a small machine, where the client, the API and the emulation share the cores."""
    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    for _ in range(calls):
        fn()
    return "   ".join(f"{name} {1000 * (cpu_seconds(pid) - before[name]) / calls:5.2f} ms"
                       for name, pid in processes.items())


def measure(describe_ok: Callable[[], bool], floors: dict[str, Callable[[], bool]],
            processes: dict[str, int]) -> None:
    for fn in (describe_ok, *floors.values()):  # warm up connections and caches
        for _ in range(20):
            fn()
    print(f"CPU per Describe (600 calls, one at a time): {cpu_per_call(describe_ok, processes)}")
    print("floors, 20 calls/s for 15 s:")
    for name, fn in floors.items():
        lat, err = paced(fn, 20, 15)
        print(f"  {name:34s} {percentiles(lat)}   errors {err}")
    lat, err = paced(describe_ok, 20, 15)
    print(f"Describe at 20 req/s for 15 s:       {percentiles(lat)}   errors {err}")
    print("Describe, closed loop (N concurrent callers, 10 s each):")
    for workers in (1, 2, 4, 8):
        rate, lat, err = closed_loop(describe_ok, workers, 10)
        print(f"  {workers:2d} callers: {rate:6.1f} req/s   {percentiles(lat)}   errors {err}")
    print("Describe, open loop at fixed rates (15 s each; latency from the scheduled start):")
    sustained = 0
    for rate_ in (40, 60, 80, 100, 120, 140):
        lat, err = paced(describe_ok, rate_, 15)
        p99 = statistics.quantiles(lat, n=100, method="inclusive")[98]
        print(f"  {rate_:3d} req/s: {percentiles(lat)}   errors {err}")
        if err == 0 and p99 < 250:
            sustained = rate_
    print(f"highest rate sustained (no errors, p99 < 250 ms): {sustained} req/s")


def main() -> int:
    run_dir = Path(tempfile.mkdtemp(prefix="cloudrec-bench-"))
    # no Janus needed: no room joins
    with running_stack(run_dir, CLOUDREC_JANUS_URL=f"http://127.0.0.1:{free_port()}/janus") as stack:
        caller, task_id = bench_task(stack)
        describe = {"SdkAppId": APP, "TaskId": task_id}
        ddb = stack.boto("dynamodb")
        print(f"cloudrec API benchmark (local stack: chalice local + moto server), {os.cpu_count()} cores")
        measure(lambda: caller.call("DescribeCloudRecording", describe).get("Status") is not None, {
            "DynamoDB GetItem (moto server)":
                lambda: "Item" in ddb.get_item(TableName="cloudrec-tasks", Key={"task_id": {"S": task_id}}),
            # no Authorization: answered before any storage access
            "API, rejected unsigned": lambda: "Error" in caller.call("DescribeCloudRecording", describe, signed=False),
        }, stack_processes(stack.proc.pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
