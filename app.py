"""cloudrec's Chalice app: the API 3.0 endpoint and the event handlers, as thin adapters.

Each handler parses its input, calls one domain function in chalicelib and shapes the
result. Deployment names (queue, bucket) come from the environment at import.
"""

from __future__ import annotations

import gc
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Chalice, Rate, Response
from chalice.app import CloudWatchEvent, SQSEvent

from chalicelib import (
    aws,
    backup,
    callbacks,
    console,
    dispatch,
    event_log,
    events,
    output_jobs,
    post_record,
    reaper,
    recorder_exits,
    wiring,
)
from chalicelib.api import HttpRequest, handle
from chalicelib.observability import get_logger, get_metrics

settings = aws.settings()
app = Chalice(app_name="cloudrec")
logger = get_logger("cloudrec-api")
metrics = get_metrics("cloudrec-api")
# exactly this Content-Type: with a charset the SDK silently ignores errors
JSON_HEADERS: dict[str, str | list[str]] = {"Content-Type": "application/json"}


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    """Flush metrics and forget per-invocation log keys after every handler."""
    try:
        return get_response(event)
    finally:
        logger.thread_safe_clear_keys()
        metrics.flush_metrics()


def _api_reply() -> Response:
    request = app.current_request
    assert request is not None
    query = request.query_params
    raw = request.raw_body or b""
    http = HttpRequest(
        method=request.method.upper(),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=[(k, v) for k in (query or {}) for v in query.getlist(k)] if query else [],
        body=raw.encode() if isinstance(raw, str) else raw,
        source=str(((request.context or {}).get("identity") or {}).get("sourceIp") or ""),
    )
    started = time.perf_counter()
    request_id = str(uuid.uuid4())
    logger.thread_safe_append_keys(request_id=request_id)
    outcome = handle(wiring.api(), http, time.time(), request_id, logger.thread_safe_append_keys)
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info("api request", extra={"error_code": outcome.error_code, "latency_ms": round(elapsed_ms, 1)})
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    if outcome.error_code:
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    return Response(body=json.dumps(outcome.body, ensure_ascii=False), status_code=200, headers=JSON_HEADERS)


@app.route("/", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], content_types=["*/*"])
def api_root() -> Response:
    return _api_reply()


@app.route("/{proxy+}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], content_types=["*/*"])
def api_elsewhere() -> Response:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    body = {"Response": {"Error": {"Code": "InvalidParameter.UrlParamsError",
                                   "Message": "The API answers at the root path: send requests to /."},
                         "RequestId": "00000000-0000-0000-0000-000000000000"}}
    return Response(body=json.dumps(body), status_code=200, headers=JSON_HEADERS)


def _console_reply(reply: console.Reply) -> Response:
    return Response(body=reply.body, status_code=reply.status, headers={"Content-Type": reply.content_type,
                                                                          **reply.headers})


def _console_api(call: Callable[[console.Console], Any]) -> Response:
    request = app.current_request
    assert request is not None
    source = str(((request.context or {}).get("identity") or {}).get("sourceIp") or "")
    return _console_reply(console.api(request.headers.get("authorization", ""), source, time.time(),
                                      aws.settings().auth_failure_limit, call))


@app.route("/console", methods=["GET"])
def console_page() -> Response:
    """The operators' console (chalicelib/console.py); no console without CLOUDREC_CONSOLE_KEY."""
    request = app.current_request
    assert request is not None
    path = str((request.context or {}).get("path") or "")
    return _console_reply(console.page(path, request.headers.get("if-none-match", "")))


@app.route("/console/{name}", methods=["GET"])
def console_asset(name: str) -> Response:
    request = app.current_request
    assert request is not None
    return _console_reply(console.asset(name, request.headers.get("if-none-match", "")))


@app.route("/console/api/apps", methods=["GET"])
def console_apps() -> Response:
    return _console_api(lambda c: c.app_list())


@app.route("/console/api/apps/{sdkappid}/tasks", methods=["GET"])
def console_tasks(sdkappid: str) -> Response:
    return _console_api(lambda c: c.task_list(console.path_app_id(sdkappid)))


@app.route("/console/api/apps/{sdkappid}/tasks/{taskid}", methods=["GET"])
def console_task(sdkappid: str, taskid: str) -> Response:
    return _console_api(lambda c: c.task_detail(console.path_app_id(sdkappid), console.path_task_id(taskid)))


@app.route("/console/api/apps/{sdkappid}/tasks/{taskid}/playlist", methods=["GET"])
def console_playlist(sdkappid: str, taskid: str) -> Response:
    """An HLS playlist of the task whose segments are presigned URLs (`?file=<name>&where=storage|backup`)."""
    request = app.current_request
    assert request is not None
    query: dict[str, str] = dict(request.query_params or {})
    return _console_api(lambda c: c.playlist(console.path_app_id(sdkappid), console.path_task_id(taskid),
                                             query.get("file", ""), query.get("where", "storage")))


def _post(message: dict[str, Any]) -> dict[str, Any]:
    if not events.sent_by_its_task(message, wiring.task_store().get(events.task_of(message))):
        # a recorder may send on the queue; never in another task's (or app's) name
        metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=1)
        logger.warning("an event not signed by the task it names was dropped")
        return {"delivered": False}
    delivered = callbacks.deliver(message, wiring.app_registry(), int(time.time() * 1000),
                                  journal=event_log.EventLog(wiring.internal_bucket()))  # the console's
    if delivered:
        metrics.add_metric(name="CallbacksDelivered", unit=MetricUnit.Count, value=1)
    return {"delivered": delivered}


def _deliver_callback(record: SQSRecord) -> None:
    message = json.loads(record.body)
    logger.thread_safe_append_keys(message_id=record.message_id, task_id=events.task_of(message),
                                   event_type=message.get("Event", {}).get("EventType"))
    try:
        # a message SQS hands out again after it was delivered (its delete got lost) is not posted twice
        wiring.once().run("callback", record.message_id, lambda: _post(message))
    except callbacks.CallbackError as exc:
        metrics.add_metric(name="CallbacksFailed", unit=MetricUnit.Count, value=1)
        logger.warning("callback not delivered; retrying later", extra={"reason": str(exc)})
        raise


@app.on_sqs_message(queue=settings.events_queue, batch_size=1, name="deliver_callbacks")
def deliver_callbacks(event: SQSEvent) -> dict[str, Any]:
    """Post queued events to the apps' callback URLs; report failures per message. A failure
    holds back only its own task's later events (its FIFO group), for a growing while. One
    message per call: a slow receiver delays only its own post, never untried events that
    would time out with it and count a receive toward the dead-letter queue."""
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # a batch that failed entirely is still a partial-batch answer: SQS retries those messages
    # (the FIFO processor's constructor does not take this option)
    processor.raise_on_entire_batch_failure = False
    records = event.to_dict()["Records"]
    result: dict[str, Any] = dict(process_partial_response(event=event.to_dict(), record_handler=_deliver_callback,
                                                           processor=processor))
    failed = {str(f["itemIdentifier"]) for f in result["batchItemFailures"]}
    wiring.event_queue().hold(callbacks.hold_back(records, failed, aws.settings().callback_backoff_s))
    return result


@app.on_sqs_message(queue=settings.fallback_queue, batch_size=1, name="dispatch_fallback")
def dispatch_fallback(event: SQSEvent) -> dict[str, int]:
    """The claim wait of a recording is over: if no warm worker claimed it, start a dedicated
    recorder (chalicelib/dispatch.py). A recorder that cannot start now fails the message, which
    comes back after its visibility timeout."""
    started = 0
    for record in event:
        waiting = dispatch.Dispatch.parse(record.body)
        if waiting is None:
            logger.warning("not a dispatch; dropped")
            continue
        logger.thread_safe_append_keys(task_id=waiting.task_id)
        if wiring.fleet().fall_back(waiting):
            logger.info("no worker claimed the recording: a dedicated recorder starts",
                        extra={"claim_wait_s": aws.settings().claim_wait_s})
            started += 1
    metrics.add_metric(name="ColdStarts", unit=MetricUnit.Count, value=started)
    return {"started": started}


# S3-triggered functions: CloudFormation cannot add notifications to a bucket Chalice does not own
# (Chalice refuses to package @app.on_s3_event), so the trigger is declared here, wired by the
# deployment template (infra/aws) and by the local event pump alike.
S3_TRIGGERS = {"make_outputs": (settings.internal_bucket, output_jobs.MARKER_PREFIX)}


@app.lambda_function(name="make_outputs")
def make_outputs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run one part of an output job (MP4/AAC, VOD commit) when its marker lands in the internal bucket."""
    made = 0
    for record in event.get("Records", []):
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])  # "+" in TaskIds arrives as %2B
        if record["s3"]["bucket"]["name"] != wiring.internal_bucket().name or \
                not key.startswith(output_jobs.MARKER_PREFIX):
            continue
        logger.thread_safe_append_keys(marker=key)
        body = wiring.internal_bucket().get(key)

        def work(body: bytes = body, key: str = key) -> dict[str, Any]:
            post_record.run(body, wiring.post_deps())
            return {"done": key}

        wiring.once().run("outputs", key, work, context)
        made += 1
        metrics.add_metric(name="OutputPartsMade", unit=MetricUnit.Count, value=1)
    return {"made": made}


@app.schedule(Rate(1, unit=Rate.MINUTES), name="reap_recorders")
def reap_recorders(event: Any) -> dict[str, int]:
    """Relaunch or end tasks whose recorder stopped heartbeating."""
    handled = reaper.reap(wiring.task_store(), wiring.starter(), wiring.event_queue(), aws.settings(),
                          time.time(), wiring.internal_bucket())
    metrics.add_metric(name="TasksReaped", unit=MetricUnit.Count, value=handled)
    return {"handled": handled}


@app.schedule(Rate(1, unit=Rate.MINUTES), name="deliver_backups")
def deliver_backups(event: Any) -> dict[str, int]:
    """Move the files ended tasks left in the backup storage on to their customers' storage."""
    done = backup.deliver(wiring.task_store(), wiring.internal_bucket(), wiring.event_queue(), aws.settings(),
                          time.time())
    metrics.add_metric(name="BackupFilesDelivered", unit=MetricUnit.Count, value=done.moved)
    # a file that waits long: the customer's storage has refused it that long (alarm: BackupAgeAlarm)
    metrics.add_metric(name="OldestBackupAge", unit=MetricUnit.Seconds, value=round(done.oldest_s))
    return {"moved": done.moved}


@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_outputs")
def sweep_outputs(event: Any) -> dict[str, int]:
    """Ended tasks whose outputs are overdue: request them, or report the jobs that failed for good."""
    handled = post_record.sweep(wiring.post_deps(), time.time())
    metrics.add_metric(name="OverdueOutputs", unit=MetricUnit.Count, value=handled)
    return {"handled": handled}


@app.on_cw_event(recorder_exits.PATTERN, name="recorder_stopped")
def recorder_stopped(event: CloudWatchEvent) -> dict[str, int]:
    """A recorder's Fargate task stopped (EventBridge): if its task is still live, hand it to a
    new recorder (or end it) now rather than when the lease runs out, and log ECS's reason."""
    stopped = recorder_exits.parse(event.to_dict())
    if stopped is None:
        return {"handled": 0}
    if stopped.worker:  # a warm worker: each recording it hosted goes on elsewhere
        logger.info("worker stopped", extra={"worker": stopped.handle, "reason": stopped.reason})
        handled = reaper.worker_exited(wiring.task_store(), wiring.starter(), wiring.event_queue(), aws.settings(),
                                       stopped.handle, stopped.reason, time.time(), wiring.internal_bucket())
        metrics.add_metric(name="RecordersReplaced", unit=MetricUnit.Count, value=handled)
        return {"handled": handled}
    logger.thread_safe_append_keys(task_id=stopped.task_id)
    logger.info("recorder stopped", extra={"reason": stopped.reason})
    handled = reaper.recorder_exited(wiring.task_store(), wiring.starter(), wiring.event_queue(), aws.settings(),
                                     stopped.task_id, stopped.handle, stopped.reason, time.time(),
                                     wiring.internal_bucket())
    metrics.add_metric(name="RecordersReplaced", unit=MetricUnit.Count, value=handled)
    return {"handled": handled}


# What loading made (modules, clients' service models) lives as long as the process: frozen, it is
# no longer walked by full collections, which otherwise hold a request 50–100 ms (bench/api.py).
gc.collect()
gc.freeze()
