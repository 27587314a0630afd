"""Queued events are posted signed to the app's callback URL; failures stay queued."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from chalicelib import aws, wiring
from chalicelib.config import Settings
from chalicelib.events import Event, EventType, message_body
from chalicelib.signing import callback_sign
from tests.support.callback_receiver import CallbackReceiver
from tests.support.task_records import LIVE_FOR_GOOD, task_record

# a live task (the event pump runs the reaper too) with its event key
TASK = task_record("T+1.", room_id="3560", user_id="rec", event_key="task-event-key", lease_expires_ms=LIVE_FOR_GOOD)


@pytest.fixture(autouse=True)
def stored_task(aws_env: Settings) -> None:
    """Events are posted only for a task the service knows (and signed with its key)."""
    wiring.task_store().admit(TASK, None, None, 10)


def started(key: str, **payload: int) -> Event:
    """A 301 whose dedup key the test chooses."""
    return Event(EventType.RECORDER_START, {"Status": 0, **payload}, key)


def _sqs_event(settings: Settings) -> dict[str, Any]:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123:q",
                         "awsRegion": "us-east-1"} for m in msgs]}


def _delete(settings: Settings, event: dict[str, Any]) -> None:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    for record in event["Records"]:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])


def test_event_is_posted_signed(aws_env: Settings, receiver: CallbackReceiver) -> None:
    import app as chalice_app

    wiring.event_queue().publish(started("k"), TASK, 1_700_000_000_123)
    result = chalice_app.deliver_callbacks(_sqs_event(aws_env), None)
    assert result == {"batchItemFailures": []}
    headers, body = receiver.posts[0]
    assert headers["Content-Type"] == "application/json" and headers["SdkAppId"] == "1400000001"
    assert headers["Sign"] == callback_sign("cbkey123", body)
    sent = json.loads(body)
    assert list(sent) == ["EventGroupId", "EventType", "CallbackTs", "EventInfo"]
    assert sent["EventGroupId"] == 3 and sent["EventType"] == 301
    assert sent["EventInfo"] == {"RoomId": 3560, "EventTs": 1_700_000_000, "EventMsTs": 1_700_000_000_123,
                                 "UserId": "rec", "TaskId": "T+1.", "Payload": {"Status": 0}}


def test_failed_delivery_is_reported_and_held_back(aws_env: Settings, receiver: CallbackReceiver) -> None:
    import app as chalice_app

    receiver.status = 500
    for i in range(2):
        wiring.event_queue().publish(started(f"k{i}"), TASK, 1)
    event = _sqs_event(aws_env)
    result = chalice_app.deliver_callbacks(event, None)
    # FIFO: the first failure holds back the rest of the batch, in order
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [r["messageId"] for r in event["Records"]]
    assert len(receiver.posts) == 1


def test_duplicate_events_are_dropped_by_the_fifo_queue(aws_env: Settings) -> None:
    for _ in range(3):
        wiring.event_queue().publish(started("same"), TASK, 1)
    assert len(_sqs_event(aws_env)["Records"]) == 1


def test_a_message_delivered_twice_is_posted_once(aws_env: Settings, receiver: CallbackReceiver) -> None:
    import app as chalice_app

    wiring.event_queue().publish(started("once"), TASK, 1)
    event = _sqs_event(aws_env)
    assert chalice_app.deliver_callbacks(event, None) == {"batchItemFailures": []}
    # SQS hands the message out again (its delete was lost): same message id, no second POST
    assert chalice_app.deliver_callbacks(event, None) == {"batchItemFailures": []}
    assert len(receiver.posts) == 1


def test_receiver_down_then_back_loses_nothing_and_keeps_order(
        aws_env: Settings, receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    import app as chalice_app
    from infra.local.pump import EventPump
    from tests.support.stack import wait_for

    monkeypatch.setenv("CLOUDREC_CALLBACK_BACKOFF_S", "1")  # TRTC's 10 s, shortened for the test
    wiring.reset()
    receiver.status = 503  # the customer's endpoint is down
    other = dataclasses.replace(TASK, task_id="T+2.", room_id="3561")
    wiring.task_store().admit(other, None, None, 10)
    for n in range(4):
        for task in (TASK, other):
            wiring.event_queue().publish(started(f"{task.task_id}-{n}", n=n), task, 1_000 + n)
    pump = EventPump(chalice_app, aws.client("sqs"), aws_env.aws_region)
    pump.start()
    try:
        wait_for(lambda: len(receiver.posts) >= 4, 20, "retries while the receiver is down")
        receiver.status = 200  # back up
        back = time.monotonic()
        wait_for(lambda: len(receiver.accepted) >= 8, 40, "every event after recovery")
        print(f"8 events delivered {time.monotonic() - back:.1f} s after the receiver came back")
        time.sleep(1)  # nothing more arrives (no duplicates)
    finally:
        pump.stop()
    delivered = [json.loads(body)["EventInfo"] for body in receiver.accepted]
    assert len(delivered) == 8
    for task in (TASK, other):
        mine = [d["Payload"]["n"] for d in delivered if d["TaskId"] == task.task_id]
        assert mine == [0, 1, 2, 3]  # each once, in order
    assert all(h["Sign"] == callback_sign("cbkey123", b) for h, b in receiver.posts)


def test_dead_letters_are_listed_and_redelivered(aws_env: Settings, receiver: CallbackReceiver,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import app as chalice_app
    from chalicelib import admin
    from chalicelib.schema import events_dlq_name

    sqs = aws.client("sqs")
    dlq = sqs.get_queue_url(QueueName=events_dlq_name(aws_env))["QueueUrl"]
    for n in range(2):  # as SQS leaves them after the queue's last retry
        body = message_body(started("", n=n), TASK, 5)
        sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageGroupId=TASK.task_id, MessageDeduplicationId=f"d{n}")
    assert admin.main(["dead-letters"]) == 0
    listed = _printed(capsys)
    assert [(d["TaskId"], d["EventType"]) for d in listed] == [(TASK.task_id, 301)] * 2
    assert admin.main(["dead-letters"]) == 0  # listing leaves them where they are
    assert len(_printed(capsys)) == 2
    assert admin.main(["dead-letters", "--redeliver"]) == 0
    assert len(_printed(capsys)["Redelivered"]) == 2
    assert chalice_app.deliver_callbacks(_sqs_event(aws_env), None) == {"batchItemFailures": []}
    assert [json.loads(b)["EventInfo"]["Payload"]["n"] for _, b in receiver.posts] == [0, 1]
    assert admin.main(["dead-letters"]) == 0 and _printed(capsys) == []


def _printed(capsys: pytest.CaptureFixture[str]) -> Any:
    """What the admin command printed (the JSON document; structured log lines aside)."""
    lines = capsys.readouterr().out.splitlines()
    return json.loads("\n".join(line for line in lines if not line.startswith('{"')))


def test_a_post_ends_at_its_deadline_however_the_receiver_trickles() -> None:
    """A receiver that answers a byte at a time never trips a socket timeout: the POST's
    deadline covers it all."""
    import socket
    import threading

    from chalicelib.callbacks import CallbackError, Post, send
    from chalicelib.fetch import address_policy

    listener = socket.create_server(("127.0.0.1", 0))
    reached: list[bool] = []

    def trickle() -> None:
        conn, _ = listener.accept()
        reached.append(True)
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                conn.sendall(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(CallbackError):
        send(Post(f"http://127.0.0.1:{listener.getsockname()[1]}/cb", b"{}", {}), deadline_s=1.0,
             policy=address_policy(allow_private=True))
    assert reached and 1.0 <= time.monotonic() - started < 2.0  # it was answering, and was cut off
    listener.close()


def test_an_event_not_signed_by_its_task_is_not_posted(aws_env: Settings, receiver: CallbackReceiver) -> None:
    """A recorder may send on the events queue (it parses media from anyone in its room): a
    message in another task's name, another app's, or for no task, never reaches a customer."""
    import app as chalice_app

    queue = wiring.event_queue()
    other = task_record("T+2.", room_id="3561", user_id="rec", event_key="another-tasks-key")
    wiring.task_store().admit(other, None, None, 10)
    forged = [
        dataclasses.replace(TASK, event_key="a key of the forger's"),  # TASK's event, wrongly signed
        dataclasses.replace(TASK, event_key=""),  # TASK's event, unsigned
        dataclasses.replace(other, event_key=TASK.event_key),  # signed, but with another task's key
        dataclasses.replace(TASK, sdkappid=1400000099),  # TASK's key, posted to another app
        task_record("no-such-task", event_key="k"),
    ]
    for i, task in enumerate(forged):
        queue.publish(started(f"forged-{i}"), task, 1_700_000_000_000)
    handled = _sqs_event(aws_env)
    assert chalice_app.deliver_callbacks(handled, None) == {"batchItemFailures": []}
    assert receiver.posts == []
    _delete(aws_env, handled)  # as SQS does with what its Lambda handled
    queue.publish(started("genuine"), TASK, 1_700_000_000_000)  # the same, signed by its task: posted
    assert chalice_app.deliver_callbacks(_sqs_event(aws_env), None) == {"batchItemFailures": []}
    assert [json.loads(body)["EventInfo"]["TaskId"] for _, body in receiver.posts] == [TASK.task_id]
