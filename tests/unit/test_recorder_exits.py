"""The platform's word that a recorder stopped: ECS task-state events, and the local
launcher's events of the same shape."""

from __future__ import annotations

from chalicelib import recorder_exits
from chalicelib.recorder_exits import PATTERN, RecorderExit, local_event, matches, parse


def test_a_killed_local_recorder_reads_like_a_stopped_fargate_task() -> None:
    event = local_event("T+1.", "pid:42", -9, "us-east-1")
    assert matches(PATTERN, event)
    assert parse(event) == RecorderExit("T+1.", "pid:42", "killed by signal 9 (exit code 137)")
    assert parse(local_event("T+1.", "pid:42", 0, "us-east-1")) == RecorderExit(
        "T+1.", "pid:42", "Essential container in task exited (exit code 0)")


def test_only_stopped_cloudrec_tasks_match() -> None:
    event = local_event("T+1.", "pid:42", 1, "us-east-1")
    running = {**event, "detail": {**event["detail"], "lastStatus": "RUNNING"}}
    foreign = {**event, "detail": {**event["detail"], "startedBy": "someone-else"}}
    assert not matches(PATTERN, running) and parse(running) is None
    assert not matches(PATTERN, foreign)
    assert not matches(PATTERN, {"source": "aws.ecs"})
    nameless = {**event, "detail": {**event["detail"], "overrides": {}}}
    assert parse(nameless) is None  # not one of our recorders: nothing to take over
    assert recorder_exits.parse({"source": "aws.events", "detail": {}}) is None
