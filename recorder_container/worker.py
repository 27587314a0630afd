"""A warm recorder worker: `python -m recorder_container.worker`, a task of an ECS service in AWS
and a process of the local stack, hosting the recorders of several tasks at once.

It long-polls the dispatch queue while its free capacity covers the cheapest recording, and
claims a dispatch it can afford (chalicelib/dispatch.py) with a conditional update of the
task's launch handle; one it cannot afford goes back on the queue at once for another worker.
For each task it claims it does what a dedicated recorder's keeper does (keeper.py): assumes
the scoped recorder role for that task alone and runs the task's recorder, as another user,
with those credentials only; the recorder is forked from the zygote (zygote.py), which holds
no credentials, so it starts in milliseconds. One recorder's crash ends that process alone.

Capacity is in vCPUs: a task is admitted at its cost (chalicelib/recording_cost.py), and what
the worker's recordings really use is measured from /proc; the larger of the two counts.
Every few seconds the worker logs FreeCapacity and CapacityInUse as CloudWatch metrics (EMF),
which the fleet's target tracking scales on, and holds ECS scale-in protection while it hosts
a recording. Each recorder that ends is reported as a dedicated one's Fargate task would be
(recorder_exits.py), so the task goes on elsewhere at once if it has not ended.

On SIGTERM it claims nothing more, stops each recorder the way the platform does (each hands
its task over and the reaper relaunches it elsewhere), waits for them, and exits.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib import aws, config, recorder_exits
from chalicelib.config import ConfigError, Settings
from chalicelib.dispatch import Dispatch, worker_handle
from chalicelib.launcher import HA_INDEX_ENV, TASK_ID_ENV, die_with_parent, recorder_env, recorder_file
from chalicelib.naming import file_safe
from chalicelib.observability import get_logger, get_metrics
from chalicelib.recording_cost import single_stream
from chalicelib.task_store import TaskStore
from recorder_container import health
from recorder_container.keeper import OTHER_CREDENTIALS, Keeper, hand_over
from recorder_container.settings import RecorderSettings

log = get_logger("cloudrec-worker")
POLL_S = 2  # a long poll, answered at once when a dispatch arrives
# How long a received dispatch stays the worker's before SQS hands it out again: a claim takes
# one conditional update, and a dead worker's poll still in flight takes a dispatch away this
# long (SQS hands it to a connection that is gone) — less than the claim wait, so another warm
# worker gets it before the fallback does. A dispatch handed out twice is claimed once.
HOLD_S = 2
PAUSE_S = 0.5  # after handing back a dispatch it cannot afford: another worker's turn
REPORT_S = 5.0  # metrics, protection, health, credentials
LOAD_WINDOW_S = 10.0
CHEAPEST = single_stream(0)  # below this free capacity the worker does not poll
PROTECTION_MINUTES = 120  # renewed every hour while the worker hosts a recording
STOP_WAIT_S = 110.0  # ECS gives a worker 120 s after SIGTERM (its StopTimeout)
TICK = os.sysconf("SC_CLK_TCK")
# what the fleet's target tracking reads (infra/aws/fleet.py): namespace "cloudrec", these dimensions
METRICS_SERVICE, FLEET_DIMENSION = "cloudrec-worker", "fleet"


@dataclass
class Usage:
    """CPU one recording used lately (its recorder and the recorder's shards), in vCPUs."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, now: float, ticks: int) -> float:
        self.samples.append((now, ticks))
        self.samples = [s for s in self.samples if now - s[0] <= LOAD_WINDOW_S] or self.samples[-1:]
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return max(0.0, (c1 - c0) / TICK / (t1 - t0)) if t1 > t0 else 0.0


@dataclass
class Hosted:
    """One recording this worker runs."""

    dispatch: Dispatch
    handle: str
    keeper: Keeper
    credentials: Path
    pid: int | None = None
    usage: Usage = field(default_factory=Usage)
    used: float = 0.0  # vCPUs, lately

    @property
    def cost(self) -> float:
        """What the recording counts for: its admission cost, or what it uses if that is more."""
        return max(self.dispatch.cost, self.used)


def _process_ticks() -> tuple[dict[int, int], dict[int, int]]:
    """(parent, utime + stime in clock ticks) of every process."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return parents, ticks


def tree_ticks(root: int, parents: dict[int, int], ticks: dict[int, int]) -> int:
    """CPU ticks of `root` and its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += ticks.get(pid, 0)
        frontier += children.get(pid, [])
    return total


def _ecs_task() -> tuple[str, str] | None:
    """(task ARN, cluster) from the ECS task metadata endpoint, when running on ECS."""
    uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return None
    with urllib.request.urlopen(uri + "/task", timeout=5) as reply:  # noqa: S310 (ECS's own address)
        meta = json.load(reply)
    return str(meta["TaskARN"]), str(meta["Cluster"])


class Protection:
    """ECS scale-in protection of the worker's own task, held while it hosts a recording and
    renewed hourly (it lapses after PROTECTION_MINUTES if the worker can no longer renew it)."""

    def __init__(self, ecs: Any, cluster: str, task_arn: str) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._task = task_arn
        self._held = False
        self._since = 0.0

    def hold(self, wanted: bool, now: float) -> None:
        if wanted == self._held and (not wanted or now - self._since < 3600):
            return
        args: dict[str, Any] = {"cluster": self._cluster, "tasks": [self._task], "protectionEnabled": wanted}
        if wanted:
            args["expiresInMinutes"] = PROTECTION_MINUTES
        self._ecs().update_task_protection(**args)
        self._held, self._since = wanted, now


class Zygote:
    """The worker's side of the zygote's pipe."""

    def __init__(self, env: dict[str, str], on_exit: Any) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "recorder_container.zygote"], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent)  # noqa: PLW1509
        self.pid = self._proc.pid
        self._on_exit = on_exit
        self.closing = False
        self._lock = threading.Lock()
        self._waiting: list[Callable[[int | None], None]] = []  # one per request, in order
        assert self._proc.stdout is not None
        if json.loads(self._proc.stdout.readline() or "{}").get("ready") is not True:  # its imports done
            raise RuntimeError("the zygote did not start")
        threading.Thread(target=self._read, name="zygote", daemon=True).start()

    def spawn(self, env: dict[str, str], uid: int | None, log_path: Path | None,
              on_pid: Callable[[int], None]) -> int:
        """Fork a recorder with this environment; `on_pid` learns its pid before anything can
        tell of its end (a recorder may end at once)."""
        started = threading.Event()
        forked: list[int | None] = []

        def answered(pid: int | None) -> None:
            if pid is not None:
                on_pid(pid)
            forked.append(pid)
            started.set()

        with self._lock:
            assert self._proc.stdin is not None
            self._waiting.append(answered)
            self._proc.stdin.write((json.dumps({"env": env, "uid": uid, "log": str(log_path) if log_path else None})
                                    + "\n").encode())
            self._proc.stdin.flush()
        if not started.wait(30) or forked[0] is None:
            raise RuntimeError("the zygote could not fork a recorder")
        return forked[0]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            if "exit" in message:
                self._on_exit(int(message["exit"]), int(message["code"]))
            else:  # the pid of the oldest request: known before that recorder's exit is read
                with self._lock:
                    answered = self._waiting.pop(0)
                answered(message.get("pid"))
        if not self.closing:  # its recorders died with it: the worker goes too, and is replaced
            log.error("the zygote ended; the worker exits")
            os._exit(70)

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        self._proc.wait(10)


class Worker:
    def __init__(self, settings: Settings, worker_id: str, capacity: float, cluster: str = "") -> None:
        self.s = settings
        self.id = worker_id
        self.capacity = capacity
        self._cluster = cluster
        self._store = TaskStore(aws.make_client("dynamodb", settings), settings.tasks_table, settings.limits_table)
        self._sqs = aws.make_client("sqs", settings)
        self._queue = self._sqs.get_queue_url(QueueName=settings.dispatch_queue)["QueueUrl"]
        self._metrics = get_metrics(METRICS_SERVICE)
        self._metrics.set_default_dimensions(**{FLEET_DIMENSION: config.CLOUDREC_FLEET.get(os.environ)})
        self._hosted: dict[str, Hosted] = {}  # by launch handle
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._reports: list[threading.Thread] = []  # exits being reported
        self.stopping = threading.Event()
        self._base_env = recorder_env(dict(os.environ))
        zygote_env = {k: v for k, v in self._base_env.items()
                      if k not in OTHER_CREDENTIALS and k != config.CLOUDREC_SEAL_KEY.name}
        self._zygote = Zygote(zygote_env, self._exited)
        self._events = functools.cache(lambda: aws.make_client("events", settings))  # reports, with ECS
        self._protection = Protection(lambda: aws.make_client("ecs", settings), cluster, worker_id) if cluster else None
        self._alive = settings.run_dir / "alive" / "worker"

    # -- capacity --------------------------------------------------------------------------

    def in_use(self) -> float:
        with self._lock:
            return sum(h.cost for h in self._hosted.values())

    def free(self) -> float:
        return self.capacity - self.in_use()

    # -- claiming --------------------------------------------------------------------------

    def run(self) -> None:
        threading.Thread(target=self._report_loop, name="report", daemon=True).start()
        log.info("worker up", extra={"worker": self.id, "capacity": self.capacity})
        ready = self.s.run_dir / "workers" / f"{file_safe(self.id)}.ready"  # the local stack waits for it
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
        while not self.stopping.is_set():
            if self.free() < CHEAPEST:
                self._changed.wait(1.0)
                self._changed.clear()
                continue
            try:
                got = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=1, WaitTimeSeconds=POLL_S,
                                                VisibilityTimeout=HOLD_S).get("Messages", [])
            except Exception as exc:  # the queue is unreachable for now: try again shortly
                log.warning("the dispatch queue could not be read (%s)", type(exc).__name__)
                self.stopping.wait(2.0)
                continue
            for message in got:
                try:
                    self._take(message)
                except Exception as exc:  # the store or the queue stumbled: the dispatch comes back
                    log.warning("a dispatch could not be taken (%s)", type(exc).__name__)

    def _take(self, message: dict[str, Any]) -> None:
        receipt = message["ReceiptHandle"]
        d = Dispatch.parse(message.get("Body", ""))
        if d is not None and (self.stopping.is_set() or d.cost > self.free()):
            self._sqs.change_message_visibility(QueueUrl=self._queue, ReceiptHandle=receipt, VisibilityTimeout=0)
            self.stopping.wait(PAUSE_S)
            return
        sdkappid = None
        if d is not None:
            handle = worker_handle(self.id, d)
            sdkappid = self._store.claim(d.task_id, d.handle, handle, host=self.id)
        self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=receipt)
        if d is None or sdkappid is None:
            return  # not a dispatch, or claimed already (another worker, the fallback), or ended
        log.info("claimed", extra={"task_id": d.task_id, "ha_index": d.ha_index, "cost": d.cost})
        try:
            self._start(d, handle, sdkappid)
        except Exception:  # not the recording's fault: it waits again, and the fallback takes it
            log.exception("the recorder could not be started", extra={"task_id": d.task_id})
            self._store.claim(d.task_id, handle, d.handle)

    def _start(self, d: Dispatch, handle: str, sdkappid: int) -> None:
        env = {**self._base_env, TASK_ID_ENV: d.task_id, HA_INDEX_ENV: str(d.ha_index)}
        settings = RecorderSettings.from_env(env)
        credentials = Path(tempfile.mkdtemp(prefix="cloudrec-credentials-"))
        hosted = Hosted(d, handle, Keeper(settings, sdkappid, credentials), credentials)
        with self._lock:
            self._hosted[handle] = hosted
        try:
            hosted.keeper.renew()
            child_env = hosted.keeper.recorder_environment(env)
            if settings.recorder_user is not None:
                hand_over(credentials, settings, settings.recorder_user)
            logs = None
            if not os.environ.get("ECS_CONTAINER_METADATA_URI_V4"):  # on ECS, the container's log takes it
                logs = self.s.run_dir / "recorders" / recorder_file(d.task_id, d.ha_index, ".log")
                logs.parent.mkdir(parents=True, exist_ok=True)
            self._zygote.spawn(child_env, settings.recorder_user, logs, lambda pid: setattr(hosted, "pid", pid))
        except Exception:
            self._forget(handle)
            raise
        assert hosted.pid is not None
        _write_pid(self.s.run_dir, d, hosted.pid)
        if self.stopping.is_set():  # claimed as the worker was told to stop: this one hands over too
            with contextlib.suppress(ProcessLookupError):
                os.kill(hosted.pid, signal.SIGTERM)

    # -- recorders that ended ----------------------------------------------------------------

    def _exited(self, pid: int, code: int) -> None:
        with self._lock:
            hosted = next((h for h in self._hosted.values() if h.pid == pid), None)
        if hosted is None:
            return
        self._forget(hosted.handle)
        _write_pid(self.s.run_dir, hosted.dispatch, None)
        log.info("recorder ended", extra={"task_id": hosted.dispatch.task_id, "code": code})
        # off the zygote's reader: a start waiting for its pid does not wait for this report
        reporting = threading.Thread(target=self._report, args=(hosted.dispatch.task_id, hosted.handle, code),
                                     name="report-exit", daemon=True)
        reporting.start()
        self._reports = [t for t in self._reports if t.is_alive()] + [reporting]

    def _forget(self, handle: str) -> None:
        with self._lock:
            hosted = self._hosted.pop(handle, None)
        if hosted is not None:
            shutil.rmtree(hosted.credentials, ignore_errors=True)
        self._changed.set()

    def _report(self, task_id: str, handle: str, code: int) -> None:
        """Tell the platform's way (EventBridge in AWS, the local pump's queue) that a recorder ended."""
        event = recorder_exits.local_event(task_id, handle, code, self.s.aws_region,
                                           source=recorder_exits.WORKER_SOURCE, cluster_arn=self._cluster)
        try:
            if self.s.launcher == "ecs":
                self._events().put_events(Entries=[{
                    "Source": event["source"], "DetailType": event["detail-type"], "Resources": event["resources"],
                    "Detail": json.dumps(event["detail"])}])
            else:
                recorder_exits.send_local(self._sqs, event)
        except Exception:  # the lease runs out and the sweep takes the task over then
            log.exception("a recorder's end could not be reported", extra={"task_id": task_id})

    # -- every few seconds -------------------------------------------------------------------

    def _report_loop(self) -> None:
        while not self.stopping.wait(REPORT_S) or self._hosted:
            try:
                self._report_once()
            except Exception:
                log.exception("the worker's report failed")
            if self.stopping.is_set() and not self._hosted:
                return

    def _measure(self, hosted: list[Hosted]) -> None:
        parents, ticks = _process_ticks()
        now = time.monotonic()
        for h in hosted:
            if h.pid is not None:
                h.used = h.usage.sample(now, tree_ticks(h.pid, parents, ticks))

    def _report_once(self) -> None:
        with self._lock:
            hosted = list(self._hosted.values())
        self._measure(hosted)
        publish(self._metrics, self.capacity, sum(h.cost for h in hosted), len(hosted))
        health.beat(self._alive)
        if self._protection is not None:
            self._protection.hold(bool(hosted), time.time())
        for h in hosted:
            if h.pid is not None and h.keeper.due_in() <= 0:
                try:
                    h.keeper.renew()
                except Exception:  # STS unreachable for now: the credentials still last a while
                    log.exception("credentials not renewed", extra={"task_id": h.dispatch.task_id})

    # -- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM: claim nothing more, stop every recorder the platform's way and wait for them."""
        self.stopping.set()
        with self._lock:
            pids = [h.pid for h in self._hosted.values() if h.pid is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while self._hosted and time.monotonic() < deadline:
            self._changed.wait(0.5)
            self._changed.clear()
        for reporting in list(self._reports):  # each recording's successor starts from these reports
            reporting.join(max(0.0, deadline - time.monotonic()))
        self._zygote.close()


def publish(metrics: Any, capacity: float, in_use: float, recordings: int) -> None:
    """One report of the worker's capacity, as CloudWatch metrics in its log (EMF)."""
    metrics.add_metric(name="FreeCapacity", unit=MetricUnit.Count, value=round(capacity - in_use, 3))
    metrics.add_metric(name="CapacityInUse", unit=MetricUnit.Percent, value=round(100 * in_use / capacity, 1))
    metrics.add_metric(name="Recordings", unit=MetricUnit.Count, value=recordings)
    metrics.flush_metrics()


def _write_pid(run_dir: Path, d: Dispatch, pid: int | None) -> None:
    """Where a task's recorder process can be found locally (a dedicated one's pid is its handle)."""
    path = run_dir / "recorders" / recorder_file(d.task_id, d.ha_index, ".pid")
    if pid is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{pid}\n")


def capacity_of(env: dict[str, str]) -> float:
    """The vCPUs this worker fills: CLOUDREC_WORKER_CAPACITY, else its CPUs, less the headroom."""
    cores = config.CLOUDREC_WORKER_CAPACITY.get(env) or float(len(os.sched_getaffinity(0)))
    return cores * (1 - config.CLOUDREC_WORKER_HEADROOM.get(env))


def main(argv: list[str]) -> int:
    try:
        settings = Settings.from_env()
        capacity = capacity_of(dict(os.environ))
        worker_id = config.CLOUDREC_WORKER_ID.get(os.environ)
    except ConfigError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    if argv[1:] == ["health"]:
        problem = health.check(settings.run_dir / "alive" / "worker", time.time())
        print(problem or "healthy", file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    ecs = _ecs_task()
    worker_id = worker_id or (ecs[0] if ecs else f"{os.uname().nodename}-{os.getpid()}")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    log.append_keys(worker=worker_id)
    worker = Worker(settings, worker_id, capacity, cluster=ecs[1] if ecs else "")
    stop = threading.Thread(target=worker.stop, name="stop", daemon=True)
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.start() if not stop.is_alive() and not worker.stopping.is_set()
                  else None)
    signal.signal(signal.SIGINT, signal.getsignal(signal.SIGTERM))
    worker.run()
    stop.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
