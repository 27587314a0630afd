"""Handing a task to a recorder: a warm worker claims it, or a dedicated recorder starts.

With the fleet (CLOUDREC_CLAIM_WAIT_S > 0), starting a task's recorder is a dispatch: the
task's launch handle becomes `dispatch:<ha>:<id>`, then a message naming that handle goes on
the dispatch queue, where workers with free capacity long-poll (recorder_container/worker.py),
and a second one on the fallback queue, delayed by the claim wait. A worker claims the task by
changing the handle from the dispatch to its own (a conditional update); a worker that comes
later, or a message that outlived its dispatch, finds the handle changed and is dropped. When
the fallback message comes back and the handle still names the dispatch, nobody claimed it (the
fleet is full or scaling): the fallback takes it the same way and starts a dedicated recorder
as the launcher does (RunTask, a local process). Either way one recorder gets the task, and the
handle is recorded before any message can be read.

Without the fleet (a claim wait of 0) the launcher starts the recorder at once.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from chalicelib.config import Settings
from chalicelib.errors import ServiceError
from chalicelib.launcher import Launcher
from chalicelib.recording_cost import task_cost
from chalicelib.task_store import TaskStore
from chalicelib.tasks import TaskRecord

DISPATCH_PREFIX = "dispatch:"
WORKER_PREFIX = "worker:"
COLD_SUFFIX = ":cold"  # the fallback's claim, held while its recorder starts
MAX_DELAY_S = 900  # SQS's longest message delay


@dataclass(frozen=True)
class Dispatch:
    """A task waiting for a recorder: what the dispatch and fallback messages say."""

    task_id: str
    ha_index: int
    handle: str  # the task's launch handle while it waits
    cost: float  # vCPUs the recording is expected to take (recording_cost.py)

    def body(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> Dispatch | None:
        """The dispatch a message names; None for anything else."""
        try:
            raw = json.loads(body)
            out = cls(str(raw["task_id"]), int(raw["ha_index"]), str(raw["handle"]), float(raw["cost"]))
        except (ValueError, KeyError, TypeError):
            return None
        return out if out.handle.startswith(DISPATCH_PREFIX) and math.isfinite(out.cost) else None


def worker_handle(worker_id: str, dispatch: Dispatch) -> str:
    """The launch handle of a task a worker claimed: `worker:<worker id>/<dispatch id>`."""
    return f"{WORKER_PREFIX}{worker_id}/{dispatch.handle.removeprefix(DISPATCH_PREFIX)}"


def hosted_prefix(worker_id: str) -> str:
    """What the launch handles of every task a worker hosts begin with."""
    return f"{WORKER_PREFIX}{worker_id}/"


class Starter(Protocol):
    def start(self, task: TaskRecord, ha_index: int) -> None: ...

    def stop(self, handle: str) -> None: ...


@dataclass(frozen=True)
class Direct:
    """Every task on a dedicated recorder, started at once."""

    tasks: TaskStore
    launcher: Launcher

    def start(self, task: TaskRecord, ha_index: int) -> None:
        self.tasks.set_launch(task.task_id, self.launcher.launch(task.task_id, ha_index))

    def stop(self, handle: str) -> None:
        self.launcher.stop(handle)


@dataclass
class Fleet:
    """Tasks to warm workers first, to a dedicated recorder after the claim wait."""

    tasks: TaskStore
    launcher: Launcher  # the cold path
    sqs: Callable[[], Any]
    settings: Settings

    def __post_init__(self) -> None:
        self._urls: dict[str, str] = {}

    def _url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = self.sqs().get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    def start(self, task: TaskRecord, ha_index: int) -> None:
        d = Dispatch(task.task_id, ha_index, f"{DISPATCH_PREFIX}{ha_index}:{uuid.uuid4().hex[:16]}",
                     round(task_cost(task.params, task.layout), 3))
        self.tasks.set_launch(task.task_id, d.handle)
        s = self.settings
        try:
            self.sqs().send_message(QueueUrl=self._url(s.fallback_queue), MessageBody=d.body(),
                                    DelaySeconds=min(MAX_DELAY_S, math.ceil(s.claim_wait_s)))
            self.sqs().send_message(QueueUrl=self._url(s.dispatch_queue), MessageBody=d.body())
        except Exception as exc:  # botocore of any kind: no recorder will come for this task
            raise ServiceError("The recorder could not be started.") from exc

    def stop(self, handle: str) -> None:
        if not handle.startswith((DISPATCH_PREFIX, WORKER_PREFIX)):
            self.launcher.stop(handle)  # a dedicated recorder; a worker's child ends when its lease is lost

    def fall_back(self, d: Dispatch) -> bool:
        """The claim wait is over: start a dedicated recorder if no worker claimed the task. True
        if this started one; ServiceError (the message comes back) if it could not start."""
        cold = d.handle + COLD_SUFFIX
        if self.tasks.claim(d.task_id, d.handle, cold) is None:
            return False
        try:
            handle = self.launcher.launch(d.task_id, d.ha_index)
        except ServiceError:
            self.tasks.claim(d.task_id, cold, d.handle)  # back to waiting: a worker may still take it
            raise
        self.tasks.claim(d.task_id, cold, handle)
        return True
