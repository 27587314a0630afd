"""The recorder's composition root: the adapters a recorder process (the task's recorder or
one of its shards) works with, built once from its settings — the task store, the apps
registry, the event queue, the internal bucket, and its room (a Janus VideoRoom)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import uvloop

from chalicelib import aws
from chalicelib.apps import App, AppRegistry
from chalicelib.events import EventQueue
from chalicelib.observability import get_logger
from chalicelib.sealing import sealer_for
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import TaskRecord
from recorder_container.janus_room import JanusRoom, RobotTags, address_of
from recorder_container.room import Room
from recorder_container.settings import RecorderSettings, SettingsError


@dataclass(frozen=True)
class RecorderDeps:
    store: TaskStore
    apps: AppRegistry
    queue: EventQueue
    internal: Bucket


def build(settings: RecorderSettings) -> RecorderDeps:
    s = settings.service
    dynamodb = aws.make_client("dynamodb", s)
    return RecorderDeps(
        store=TaskStore(dynamodb, s.tasks_table, s.limits_table, retain_s=s.backup_keep_s + 86400,
                        sealer=sealer_for(s.kms_key_id, s.seal_key,
                                          aws.make_client("kms", s) if s.kms_key_id else None, s.seal_key_task)),
        apps=AppRegistry(dynamodb, s.apps_table),
        queue=EventQueue(aws.make_client("sqs", s), s.events_queue),
        internal=Bucket(s.internal_bucket, lambda: aws.make_client("s3", s)),
    )


def open_room(task: TaskRecord, app: App) -> Room | None:
    """The task's room on the app's Janus (None: that Janus cannot host it). A single-stream
    recording takes H.264 as sent; a mixed one decodes."""
    tags = RobotTags(app.usersig_key, task.room_id)
    address = address_of(task.sdkappid, task.room_id, task.room_id_type, task.user_id, app.room, tags)
    return JanusRoom(address, app.room, remux_h264=not task.params.mixed, tags=tags) if address is not None else None


def run_process(name: str, work: Callable[[RecorderSettings], Coroutine[Any, Any, int]],
                log_to: logging.Handler | None = None) -> int:
    """The life of a recorder process: its settings from the environment, its logger (every
    line keyed by the task), `work` run to its exit code; a crash is logged, never raised."""
    try:
        settings = RecorderSettings.from_env()
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    logger = get_logger("cloudrec-recorder", log_to)
    logger.append_keys(task_id=settings.task_id, **({"shard": settings.shard} if settings.shard else {}))
    try:
        return uvloop.run(work(settings))  # libuv's loop: about a sixth less CPU than asyncio's (bench/README.md)
    except Exception:
        logger.exception(f"{name} failed")
        return 1
