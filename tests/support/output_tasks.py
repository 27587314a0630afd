"""Ended tasks for output-job tests: a task stored in (in-process) moto with the files
Describe lists, and its output jobs run as the S3 trigger would run them."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from chalicelib import aws, post_record, wiring
from chalicelib.models import TencentVod
from chalicelib.task_store import to_item
from chalicelib.tasks import ENDED, StorageFile, StorageKeys, TaskRecord
from tests.support.task_records import params, task_record

BUCKET = "customer"
T0 = 1_760_000_000_000
TASK_ID = "Ab+cd/ef+gh."  # TaskIds are base64-like: "+" must survive the S3 event's URL encoding


def stored_task(record: dict[str, Any], files: list[StorageFile], prefix: tuple[str, ...] = (),
                task_id: str = TASK_ID, vod: TencentVod | None = None) -> TaskRecord:
    """An ended task in the task store, with `files` listed as Describe lists them; stored in
    BUCKET, or in VOD when `vod` is given."""
    task_params = params(record, BUCKET, prefix)
    if vod is not None:
        task_params = dataclasses.replace(task_params, storage=None, vod=vod)
    task = task_record(task_id, params=task_params, created_ms=T0, status=ENDED,
                       storage_keys=None if vod is not None else StorageKeys("ak", "sk"))
    aws.client("dynamodb").put_item(TableName=aws.settings().tasks_table, Item=to_item(task))
    store = wiring.task_store()
    for f in files:
        store.put_file(task_id, f)
    found = store.get(task_id)
    assert found is not None
    return found


def s3_event(key: str) -> dict[str, Any]:
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                         "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": aws.settings().internal_bucket, "arn": "arn:aws:s3:::internal"},
                                "object": {"key": urllib.parse.quote_plus(key), "size": 1}}}]}


def run_output_jobs(task: TaskRecord) -> list[str]:
    """Request the task's jobs and run every marker they drop, as S3 would trigger them."""
    import app as chalice_app

    s3 = aws.client("s3")
    bucket = aws.settings().internal_bucket
    post_record.request(task, wiring.task_store(), wiring.internal_bucket())
    done: list[str] = []
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="finished/").get("Contents", [])]
        todo = [k for k in keys if k not in done]
        if not todo:
            return done
        for key in sorted(todo):
            chalice_app.make_outputs(s3_event(key), None)
            done.append(key)
