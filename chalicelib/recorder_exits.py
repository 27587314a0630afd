"""A recorder's container (or local process) stopped: what the platform tells us, read.

In AWS, EventBridge delivers ECS's "Task State Change" events: of a dedicated recorder's
Fargate task (RunTask, started by "cloudrec") or of a warm worker's (an ECS service's task,
"ecs-svc/…": every task it hosted goes on elsewhere). A worker tells of one of its recorders
that ended with the same event from its own source ("cloudrec.worker"). The local launcher, the
local workers and the local stack (of a worker that died) send the same events through a
queue the event pump reads (schema.PLATFORM_EVENTS_QUEUE). Either way the app's
`recorder_stopped` handler reads them here and the reaper acts at once instead of waiting for
the lease to run out.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from chalicelib.launcher import TASK_ID_ENV
from chalicelib.schema import PLATFORM_EVENTS_QUEUE

SOURCE, DETAIL_TYPE, STARTED_BY = "aws.ecs", "ECS Task State Change", "cloudrec"
WORKER_SOURCE = "cloudrec.worker"  # a worker's own events, of one of its recorders
SERVICE_STARTED_BY = "ecs-svc/"  # what ECS says started a service's task: a worker
# what the EventBridge rule lets through (and what the local event pump matches)
PATTERN: dict[str, Any] = {"source": [SOURCE, WORKER_SOURCE], "detail-type": [DETAIL_TYPE],
                           "detail": {"lastStatus": ["STOPPED"],
                                      "startedBy": [STARTED_BY, {"prefix": SERVICE_STARTED_BY}]}}


@dataclass(frozen=True)
class RecorderExit:
    task_id: str  # "" when a worker stopped (`handle` is then the worker's id, its ECS task ARN)
    handle: str  # what the launcher returned: the ECS task ARN, "pid:N" locally, or a worker's handle
    reason: str  # ECS's stoppedReason and the container's exit code, for the log

    @property
    def worker(self) -> bool:
        return not self.task_id


def parse(event: dict[str, Any]) -> RecorderExit | None:
    """The stopped recorder (or worker) a task-state event tells of; None for any other event."""
    detail = event.get("detail") or {}
    if event.get("source") not in (SOURCE, WORKER_SOURCE) or detail.get("lastStatus") != "STOPPED":
        return None
    task_id = next((env.get("value") for override in (detail.get("overrides") or {}).get("containerOverrides", [])
                    for env in override.get("environment", []) if env.get("name") == TASK_ID_ENV), None)
    handle = detail.get("taskArn")
    worker = str(detail.get("startedBy") or "").startswith(SERVICE_STARTED_BY) and event.get("source") == SOURCE
    if not handle or not (task_id or worker):
        return None
    codes = [str(c["exitCode"]) for c in detail.get("containers", []) if c.get("exitCode") is not None]
    reason = str(detail.get("stoppedReason") or detail.get("stopCode") or "stopped")
    return RecorderExit("" if worker else str(task_id), str(handle),
                        reason + (f" (exit code {', '.join(codes)})" if codes else ""))


def local_event(task_id: str, handle: str, returncode: int, region: str, source: str = SOURCE,
                cluster_arn: str = "") -> dict[str, Any]:
    """The event ECS would send for a recorder that ended with `returncode` (negative: killed by
    that signal); with `task_id` "", of a worker (`handle`: its id) that ended."""
    reason = f"killed by signal {-returncode}" if returncode < 0 else "Essential container in task exited"
    overrides = {"containerOverrides": [{"name": "recorder", "environment": [
        {"name": TASK_ID_ENV, "value": task_id}] if task_id else []}]}
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE, "source": source,
        "account": "000000000000", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": region,
        "resources": [handle],
        "detail": {
            "taskArn": handle, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "startedBy": STARTED_BY if task_id else SERVICE_STARTED_BY + "local",
            "stopCode": "EssentialContainerExited", "stoppedReason": reason,
            **({"clusterArn": cluster_arn} if cluster_arn else {}),
            "containers": [{"name": "recorder", "lastStatus": "STOPPED",
                            "exitCode": 128 - returncode if returncode < 0 else returncode}],
            "overrides": overrides,
        },
    }


def send_local(sqs: Any, event: dict[str, Any]) -> None:
    """Hand an event to the local event pump, the local stand-in for EventBridge."""
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=PLATFORM_EVENTS_QUEUE)["QueueUrl"],
                     MessageBody=json.dumps(event))


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's matching for the patterns used here: every key's value is among the listed
    ones (a listed `{"prefix": p}` takes any text that starts with p), nested objects matched
    the same way."""
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not matches(wanted, value):
                return False
        elif not any(_one(w, value) for w in wanted):
            return False
    return True


def _one(wanted: Any, value: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(value, str) and value.startswith(wanted["prefix"])
    return bool(value == wanted)
