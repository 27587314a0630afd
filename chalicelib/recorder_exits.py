"""A recorder's container (or local process) stopped: what the platform tells us, read.

In AWS, EventBridge delivers ECS's "Task State Change" events; the local launcher sends the
same event, shaped the same way, through a queue the event pump reads (schema.PLATFORM_EVENTS_QUEUE).
Either way the app's `recorder_stopped` handler reads it here and the reaper acts on it at once
instead of waiting for the lease to run out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from chalicelib.launcher import TASK_ID_ENV

SOURCE, DETAIL_TYPE, STARTED_BY = "aws.ecs", "ECS Task State Change", "cloudrec"
# what the EventBridge rule lets through (and what the local event pump matches)
PATTERN: dict[str, Any] = {"source": [SOURCE], "detail-type": [DETAIL_TYPE],
                           "detail": {"lastStatus": ["STOPPED"], "startedBy": [STARTED_BY]}}


@dataclass(frozen=True)
class RecorderExit:
    task_id: str
    handle: str  # what the launcher returned: the ECS task ARN, or "pid:N" locally
    reason: str  # ECS's stoppedReason and the container's exit code, for the log


def parse(event: dict[str, Any]) -> RecorderExit | None:
    """The stopped recorder an ECS task-state event tells of; None for any other event."""
    detail = event.get("detail") or {}
    if event.get("source") != SOURCE or detail.get("lastStatus") != "STOPPED":
        return None
    task_id = next((env.get("value") for override in (detail.get("overrides") or {}).get("containerOverrides", [])
                    for env in override.get("environment", []) if env.get("name") == TASK_ID_ENV), None)
    handle = detail.get("taskArn")
    if not task_id or not handle:
        return None
    codes = [str(c["exitCode"]) for c in detail.get("containers", []) if c.get("exitCode") is not None]
    reason = str(detail.get("stoppedReason") or detail.get("stopCode") or "stopped")
    return RecorderExit(str(task_id), str(handle), reason + (f" (exit code {', '.join(codes)})" if codes else ""))


def local_event(task_id: str, handle: str, returncode: int, region: str) -> dict[str, Any]:
    """The event ECS would send for a local recorder process that ended with `returncode`
    (negative: killed by that signal)."""
    reason = f"killed by signal {-returncode}" if returncode < 0 else "Essential container in task exited"
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": DETAIL_TYPE, "source": SOURCE,
        "account": "000000000000", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": region,
        "resources": [handle],
        "detail": {
            "taskArn": handle, "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "startedBy": STARTED_BY,
            "stopCode": "EssentialContainerExited", "stoppedReason": reason,
            "containers": [{"name": "recorder", "lastStatus": "STOPPED",
                            "exitCode": 128 - returncode if returncode < 0 else returncode}],
            "overrides": {"containerOverrides": [{"name": "recorder",
                                                  "environment": [{"name": TASK_ID_ENV, "value": task_id}]}]},
        },
    }


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's matching for the patterns used here: every key's value is among the listed
    ones, nested objects matched the same way."""
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not matches(wanted, value):
                return False
        elif value not in wanted:
            return False
    return True
