"""The local event pump: what Lambda's event sources do in AWS, done against the moto
server. It reads the Chalice app's own event-source registrations, so the same handlers
run: SQS messages in Lambda's batch shape (deleting those the handler did not report as
failed), S3 notifications (delivered to the pump through an SQS queue) one record per
invocation, EventBridge events (the local launcher's, through another queue) to the handlers
whose pattern they match, and scheduled handlers at their rate.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from chalicelib import config, failed_outputs, recorder_exits
from chalicelib.schema import PLATFORM_EVENTS_QUEUE, S3_EVENTS_QUEUE

log = logging.getLogger("cloudrec.pump")
ASYNC_ATTEMPTS = 3  # Lambda runs an asynchronous invocation at most three times


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:cloudrec"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def sqs_record(msg: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg["Body"],
        "attributes": msg.get("Attributes", {}),
        "messageAttributes": msg.get("MessageAttributes", {}),
        "md5OfBody": msg.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class EventPump:
    """Polls the queues of the app's event sources and invokes its handlers."""

    def __init__(self, app_module: ModuleType, sqs: Any, region: str, failed_queue: str | None = None) -> None:
        self._module = app_module
        self._sqs = sqs
        self._region = region
        self._failed_queue = failed_queue  # S3-triggered handlers' on-failure destination
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # read where the pump is made, so a bad value fails the stack's start, not a pump thread
        self._retry_s = int(config.CLOUDREC_LOCAL_RETRY_S.get(os.environ))
        self._schedule_s = config.CLOUDREC_LOCAL_SCHEDULE_S.get(os.environ)

    def _handler(self, handler_string: str) -> Any:
        return getattr(self._module, handler_string.split(".", 1)[1])

    def start(self) -> None:
        s3_routes: list[tuple[str, str, str, Any]] = []  # (bucket, prefix, suffix, handler)
        rules: list[tuple[dict[str, Any], Any]] = []  # (event pattern, handler)
        for source in self._module.app.event_sources:
            kind = type(source).__name__
            target: Any
            args: tuple[Any, ...]
            if kind == "SQSEventConfig":
                target = self._pump_sqs
                args = (source.queue, self._handler(source.handler_string), source.batch_size)
            elif kind == "S3EventConfig":
                s3_routes.append((source.bucket, source.prefix or "", source.suffix or "",
                                  self._handler(source.handler_string)))
                continue
            elif kind == "CloudWatchEventConfig":
                rules.append((source.event_pattern, self._handler(source.handler_string)))
                continue
            elif kind == "ScheduledEventConfig":
                target, args = self._run_schedule, (source.name, self._handler(source.handler_string))
            else:
                log.warning("event source %s is not emulated locally", kind)
                continue
            self._spawn(source.name, target, args)
        # plain functions with S3 triggers the deployment template wires (see app.S3_TRIGGERS)
        for name, (bucket, prefix) in getattr(self._module, "S3_TRIGGERS", {}).items():
            s3_routes.append((bucket, prefix, "", getattr(self._module, name)))
        if s3_routes:
            self._spawn("s3", self._pump_s3, (s3_routes,))
        if rules:
            self._spawn("platform", self._pump_platform, (rules,))

    def _spawn(self, name: str, target: Any, args: tuple[Any, ...]) -> None:
        thread = threading.Thread(target=self._guard, args=(target, args), name=f"pump-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _guard(self, target: Any, args: tuple[Any, ...]) -> None:
        while not self._stop.is_set():
            try:
                target(*args)
            except Exception:
                log.exception("event pump loop failed; restarting it")
                self._stop.wait(1)

    def _pump_sqs(self, queue: str, handler: Any, batch_size: int) -> None:
        url = self._sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        while not self._stop.is_set():
            msgs = self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(batch_size, 10), WaitTimeSeconds=1,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not msgs:
                continue
            event = {"Records": [sqs_record(m, arn, self._region) for m in msgs]}
            try:
                result = handler(event, LambdaContext(queue)) or {}
            except Exception:
                log.exception("SQS handler for %s failed: the batch will be retried", queue)
                continue
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            done = [m for m in msgs if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                self._sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])])

    def _pump_s3(self, routes: list[tuple[str, str, str, Any]]) -> None:
        """Every notification to each handler whose bucket and key filter match it. As Lambda
        does with asynchronous invocations, a failed one is tried twice more (after
        CLOUDREC_LOCAL_RETRY_S), then handed to the on-failure destination, if there is one."""
        url = self._sqs.get_queue_url(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        while not self._stop.is_set():
            for msg in self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                                 AttributeNames=["ApproximateReceiveCount"]).get("Messages", []):
                event = json.loads(msg["Body"])
                try:
                    for record in event.get("Records", []):
                        s3 = record.get("s3", {})
                        bucket = s3.get("bucket", {}).get("name")
                        key = urllib.parse.unquote_plus(s3.get("object", {}).get("key", ""))
                        for want_bucket, prefix, suffix, handler in routes:
                            if bucket == want_bucket and key.startswith(prefix) and key.endswith(suffix):
                                handler({"Records": [record]}, LambdaContext(f"s3-{bucket}"))
                except Exception as exc:
                    attempts = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                    if self._failed_queue is None or attempts < ASYNC_ATTEMPTS:
                        log.exception("an S3 handler failed: the notification will be retried")
                        self._sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"],
                                                            VisibilityTimeout=self._retry_s)
                        continue
                    log.exception("an S3 handler failed %d times: to its on-failure destination", attempts)
                    failed_url = self._sqs.get_queue_url(QueueName=self._failed_queue)["QueueUrl"]
                    self._sqs.send_message(QueueUrl=failed_url, MessageBody=json.dumps(
                        failed_outputs.destination_record(event, attempts, exc, "make_outputs")))
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])

    def _pump_platform(self, rules: list[tuple[dict[str, Any], Any]]) -> None:
        """Each platform event to every handler whose rule matches it; a failed handler gets it again."""
        url = self._sqs.get_queue_url(QueueName=PLATFORM_EVENTS_QUEUE)["QueueUrl"]
        while not self._stop.is_set():
            for msg in self._sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=1).get("Messages", []):
                event = json.loads(msg["Body"])
                try:
                    for pattern, handler in rules:
                        if recorder_exits.matches(pattern, event):
                            handler(event, LambdaContext("platform-events"))
                except Exception:
                    log.exception("a platform event handler failed: the event will be retried")
                    continue
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])

    def _run_schedule(self, name: str, handler: Any) -> None:
        # scheduled handlers run more often than in AWS (every minute), to keep demos brisk
        while not self._stop.wait(self._schedule_s):
            started = time.monotonic()
            handler({  # the shape of an EventBridge scheduled event
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "000000000000", "region": self._region,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "resources": [f"arn:aws:events:{self._region}:000000000000:rule/{name}"], "detail": {},
            }, LambdaContext(name))
            log.debug("%s ran in %.2f s", name, time.monotonic() - started)
