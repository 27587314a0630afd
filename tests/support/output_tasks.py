"""Ended tasks for output-job tests: a task stored in (in-process) moto with the files
Describe lists, and its output jobs run as the S3 trigger would run them."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from chalicelib import aws, post_record, wiring
from chalicelib.task_store import StorageFile, TaskRecord

BUCKET = "customer"
T0 = 1_760_000_000_000
TASK_ID = "Ab+cd/ef+gh."  # TaskIds are base64-like: "+" must survive the S3 event's URL encoding


def params_json(record: dict[str, Any], prefix: list[str] | None = None) -> str:
    storage = {"Vendor": 1, "Region": "us-east-1", "Bucket": BUCKET, "AccessKey": "ak", "SecretKey": "sk"}
    if prefix:
        storage["FileNamePrefix"] = prefix
    return json.dumps({"RecordParams": record, "StorageParams": {"CloudStorage": storage}})


def stored_task(record: dict[str, Any], files: list[StorageFile], mode: int = 1, prefix: list[str] | None = None,
          task_id: str = TASK_ID) -> TaskRecord:
    task = TaskRecord(task_id=task_id, sdkappid=1400000001, room_id="8848", room_id_type=1, user_id="robot",
                      record_mode=mode, params_json=params_json(record, prefix), params_hash="h", created_ms=T0,
                      api_expires_ms=0, usersig_expires_s=0)
    store = wiring.task_store()
    aws.client("dynamodb").put_item(TableName=aws.settings().tasks_table, Item={
        "task_id": {"S": task.task_id}, "sdkappid": {"N": "1400000001"}, "room_id": {"S": "8848"},
        "room_id_type": {"N": "1"}, "user_id": {"S": "robot"}, "record_mode": {"N": str(mode)},
        "params_json": {"S": task.params_json}, "params_hash": {"S": "h"}, "created_ms": {"N": str(T0)},
        "api_expires_ms": {"N": "0"}, "usersig_expires_s": {"N": "0"}, "status": {"S": "ended"}, "files": {"M": {}}})
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
    post_record.request(task, wiring.task_store(), s3, bucket)
    done: list[str] = []
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="finished/").get("Contents", [])]
        todo = [k for k in keys if k not in done]
        if not todo:
            return done
        for key in sorted(todo):
            chalice_app.make_outputs(s3_event(key), None)
            done.append(key)
