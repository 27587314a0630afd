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


def test_a_worker_s_recorder_and_a_stopped_worker_are_told_apart() -> None:
    child = local_event("T+1.", "worker:w1/abc", -9, "us-east-1", source=recorder_exits.WORKER_SOURCE)
    assert matches(PATTERN, child)
    assert parse(child) == RecorderExit("T+1.", "worker:w1/abc", "killed by signal 9 (exit code 137)")
    worker = local_event("", "arn:aws:ecs:us-east-1:1:task/c/w1", -9, "us-east-1")
    assert worker["detail"]["startedBy"].startswith("ecs-svc/") and matches(PATTERN, worker)
    stopped = parse(worker)
    assert stopped is not None and stopped.worker and stopped.handle == "arn:aws:ecs:us-east-1:1:task/c/w1"
    # an ECS service's task reported by anyone but ECS is not a worker that stopped
    assert parse({**worker, "source": recorder_exits.WORKER_SOURCE}) is None
    assert not matches(PATTERN, {**worker, "detail": {**worker["detail"], "startedBy": "ecs-svcX"}})
