"""cloudrec's Chalice app: the API 3.0 endpoint and the event handlers, as thin adapters.

Each handler parses its input, calls one domain function in chalicelib and shapes the
result. Deployment names (queue, bucket) come from the environment at import.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice import Chalice, Rate, Response
from chalice.app import SQSEvent

from chalicelib import aws, callbacks, reaper, wiring
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


def _deliver_callback(record: SQSRecord) -> None:
    event = json.loads(record.body).get("Event", {})
    logger.thread_safe_append_keys(message_id=record.message_id, task_id=event.get("EventInfo", {}).get("TaskId"),
                                   event_type=event.get("EventType"))
    try:
        if callbacks.deliver(record.body, wiring.app_registry(), int(time.time() * 1000)):
            metrics.add_metric(name="CallbacksDelivered", unit=MetricUnit.Count, value=1)
    except callbacks.CallbackError:
        metrics.add_metric(name="CallbacksFailed", unit=MetricUnit.Count, value=1)
        # Hold this message back longer each time; the FIFO group waits behind it.
        delay = callbacks.retry_delay_s(callbacks.record_receive_count(record.raw_event))
        aws.client("sqs").change_message_visibility(
            QueueUrl=wiring.event_queue().url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay)
        logger.warning("callback not delivered; retrying later", extra={"retry_in_s": delay})
        raise


@app.on_sqs_message(queue=settings.events_queue, batch_size=10, name="deliver_callbacks")
def deliver_callbacks(event: SQSEvent) -> dict[str, Any]:
    """Post queued events to the apps' callback URLs; report failures per message."""
    processor = SqsFifoPartialProcessor()
    # a batch that failed entirely is still a partial-batch answer: SQS retries those messages
    # (the FIFO processor's constructor does not take this option)
    processor.raise_on_entire_batch_failure = False
    return dict(process_partial_response(event=event.to_dict(), record_handler=_deliver_callback,
                                         processor=processor))


@app.schedule(Rate(1, unit=Rate.MINUTES), name="reap_recorders")
def reap_recorders(event: Any) -> dict[str, int]:
    """Relaunch or end tasks whose recorder stopped heartbeating."""
    handled = reaper.reap(wiring.task_store(), wiring.launcher(), wiring.event_queue(), aws.settings(),
                          time.time())
    metrics.add_metric(name="TasksReaped", unit=MetricUnit.Count, value=handled)
    return {"handled": handled}
