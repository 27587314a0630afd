"""The local event pump feeds the app's handlers as Lambda's event sources would: SQS
batches with partial failures, S3 notifications one record at a time, EventBridge events by
their rule's pattern, schedules."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from typing import Any

import pytest
from chalice import Chalice, Rate

from chalicelib import aws, recorder_exits
from chalicelib.config import Settings
from chalicelib.schema import PLATFORM_EVENTS_QUEUE
from infra.local.pump import EventPump
from tests.support.stack import wait_for


@pytest.fixture
def app_module(aws_env: Settings, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A small Chalice app with one handler of each kind, recording what reaches it."""
    sqs = aws.client("sqs")
    sqs.create_queue(QueueName="jobs")
    app = Chalice(app_name="pumptest")
    seen: dict[str, list[Any]] = {"sqs": [], "s3": [], "schedule": [], "platform": []}
    lock = threading.Lock()

    @app.on_sqs_message(queue="jobs", batch_size=5)
    def on_job(event: Any) -> dict[str, Any]:
        failed = []
        for record in event:
            with lock:
                seen["sqs"].append(record.body)
            if record.body.startswith("fail"):
                failed.append({"itemIdentifier": record.to_dict()["messageId"]})
        return {"batchItemFailures": failed}

    tries: dict[str, int] = {}

    @app.on_s3_event(bucket=aws_env.internal_bucket, prefix="prefix/")
    def on_object(event: Any) -> None:
        with lock:
            tries[event.key] = tries.get(event.key, 0) + 1
            if "broken" in event.key or ("flaky" in event.key and tries[event.key] < 3):
                raise RuntimeError(f"{event.key} failed")
            seen["s3"].append(event.key)

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def every_minute(event: Any) -> None:
        with lock:
            seen["schedule"].append(event.to_dict()["detail-type"])

    @app.on_cw_event(recorder_exits.PATTERN)
    def on_stopped(event: Any) -> None:
        with lock:
            seen["platform"].append(event.to_dict()["detail"]["taskArn"])

    module = types.ModuleType("pumptest_app")
    module.app, module.on_job, module.on_object, module.every_minute = app, on_job, on_object, every_minute
    module.on_stopped = on_stopped  # type: ignore[attr-defined]
    module.seen, module.tries = seen, tries  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pumptest_app", module)
    monkeypatch.setenv("CLOUDREC_LOCAL_SCHEDULE_S", "0.2")
    monkeypatch.setenv("CLOUDREC_LOCAL_RETRY_S", "0")
    return module


def test_pump_delivers_sqs_s3_platform_events_and_schedules(aws_env: Settings, app_module: Any) -> None:
    sqs, s3 = aws.client("sqs"), aws.client("s3")
    url = sqs.get_queue_url(QueueName="jobs")["QueueUrl"]
    for body in ("ok-1", "fail-1", "ok-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    platform = sqs.get_queue_url(QueueName=PLATFORM_EVENTS_QUEUE)["QueueUrl"]
    running = {**recorder_exits.local_event("T1", "pid:1", 0, "us-east-1"), "detail": {"lastStatus": "RUNNING"}}
    for event in (running, recorder_exits.local_event("T1", "pid:2", -9, "us-east-1")):
        sqs.send_message(QueueUrl=platform, MessageBody=json.dumps(event))
    key = "prefix/Tk+a b.ts"  # TaskIds hold "+": the notification URL-encodes the key
    s3.put_object(Bucket=aws_env.internal_bucket, Key="elsewhere/a.ts", Body=b"x")  # outside the filter
    s3.put_object(Bucket=aws_env.internal_bucket, Key=key, Body=b"x")
    pump = EventPump(app_module, sqs, aws_env.aws_region)
    pump.start()
    try:
        seen = app_module.seen
        wait_for(lambda: {"ok-1", "ok-2", "fail-1"} <= set(seen["sqs"]), 10, "the SQS batch")
        wait_for(lambda: seen["s3"], 10, "the S3 notification")
        wait_for(lambda: seen["schedule"], 5, "the schedule")
        wait_for(lambda: seen["platform"], 5, "the platform event")
    finally:
        pump.stop()
    assert seen["platform"] == ["pid:2"]  # the running task's event does not match the rule
    assert seen["s3"] == [key]
    assert seen["schedule"][0] == "Scheduled Event"
    # the failed message stays queued (invisible until its visibility timeout), the others are gone
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible",
                                                                    "ApproximateNumberOfMessages"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesNotVisible"]) + int(attrs["ApproximateNumberOfMessages"]) == 1
    assert json.dumps(seen["sqs"]).count("fail-1") == 1


def test_a_failing_s3_handler_is_tried_three_times_then_its_event_goes_to_the_failure_queue(
        aws_env: Settings, app_module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """As Lambda runs S3-triggered functions: two retries, then the on-failure destination, from
    which the admin CLI lists the job and runs it again."""
    from chalicelib import admin

    sqs, s3 = aws.client("sqs"), aws.client("s3")
    for key in ("prefix/flaky.json", "prefix/broken.json"):
        s3.put_object(Bucket=aws_env.internal_bucket, Key=key, Body=b"{}")
    pump = EventPump(app_module, sqs, aws_env.aws_region, aws_env.outputs_dlq)
    pump.start()
    try:
        wait_for(lambda: "prefix/flaky.json" in app_module.seen["s3"], 20, "the third try of the flaky handler")
        wait_for(lambda: app_module.tries.get("prefix/broken.json", 0) >= 3, 20, "three tries of the broken one")
        time.sleep(1)
        assert admin.main(["failed-outputs"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(f["Marker"], f["Attempts"]) for f in listed] == [("prefix/broken.json", 3)]
        assert listed[0]["Error"] == "prefix/broken.json failed"
        assert app_module.tries == {"prefix/flaky.json": 3, "prefix/broken.json": 3}  # no fourth try
        assert admin.main(["failed-outputs", "--redeliver"]) == 0
        wait_for(lambda: app_module.tries["prefix/broken.json"] >= 4, 10, "the job run again")
    finally:
        pump.stop()
