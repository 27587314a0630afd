"""Builds the adapters from the settings, lazily and once per process."""

from __future__ import annotations

import functools
import time

from chalicelib import aws, recorder_exits
from chalicelib.api import Api
from chalicelib.apps import AppRegistry
from chalicelib.dispatch import Direct, Fleet, Starter
from chalicelib.events import EventQueue
from chalicelib.launcher import Launcher, get_launcher
from chalicelib.limits import FailureLimiter, RateLimiter
from chalicelib.once import Once
from chalicelib.post_record import PostDeps
from chalicelib.recordings import Recordings
from chalicelib.sealing import sealer_for
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore


@functools.cache
def task_store() -> TaskStore:
    s = aws.settings()
    return TaskStore(aws.client("dynamodb"), s.tasks_table, s.limits_table, retain_s=s.backup_keep_s + 86400,
                     sealer=sealer_for(s.kms_key_id, s.seal_key, aws.client("kms") if s.kms_key_id else None))


@functools.cache
def app_registry() -> AppRegistry:
    return AppRegistry(aws.client("dynamodb"), aws.settings().apps_table)


@functools.cache
def event_queue() -> EventQueue:
    return EventQueue(aws.client("sqs"), aws.settings().events_queue)


@functools.cache
def launcher() -> Launcher:
    s = aws.settings()
    return get_launcher(s, aws.client("ecs") if s.launcher == "ecs" else None, on_exit=_report_local_exit)


@functools.cache
def starter() -> Starter:
    """Warm workers first (the fleet), unless the claim wait is 0: then a dedicated recorder each."""
    return fleet() if aws.settings().claim_wait_s > 0 else Direct(task_store(), launcher())


@functools.cache
def fleet() -> Fleet:
    s = aws.settings()
    return Fleet(task_store(), launcher(), lambda: aws.client("sqs"), s)


def _report_local_exit(task_id: str, handle: str, returncode: int) -> None:
    """Tell the local event pump that a recorder process ended, as EventBridge tells of a
    stopped Fargate task (the pump stops first when the stack stops: no relaunch then)."""
    recorder_exits.send_local(aws.client("sqs"),
                              recorder_exits.local_event(task_id, handle, returncode, aws.settings().aws_region))


@functools.cache
def once() -> Once:
    return Once(aws.client("dynamodb"), aws.settings().idempotency_table)


@functools.cache
def internal_bucket() -> Bucket:
    return Bucket(aws.settings().internal_bucket, lambda: aws.client("s3"))


@functools.cache
def post_deps() -> PostDeps:
    return PostDeps(task_store(), internal_bucket(), event_queue(), aws.settings(), app_registry())


@functools.cache
def api() -> Api:
    s = aws.settings()
    return Api(
        apps=app_registry(),
        limiter=RateLimiter(aws.client("dynamodb"), s.limits_table),
        recordings=Recordings(task_store(), starter(), s, time.time),
        regions=s.regions,
        failures=FailureLimiter(s.auth_failure_limit),
    )


def reset() -> None:
    """Forget every adapter (tests switch environments)."""
    for built in (task_store, app_registry, event_queue, launcher, starter, fleet, api, once, internal_bucket,
                  post_deps):
        clear = getattr(built, "cache_clear", None)  # tests may replace an adapter
        if clear is not None:
            clear()
    aws.reset()
