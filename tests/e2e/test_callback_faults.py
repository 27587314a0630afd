"""Callbacks against a receiver on a bad day, through the local event pump as in `make run`:
every event reaches it once, in order per task, and none ends in the dead-letter queue."""

from __future__ import annotations

import dataclasses
import json
import time

from chalicelib import aws, wiring
from chalicelib.config import Settings
from chalicelib.events import Event, EventType
from chalicelib.schema import events_dlq_name
from infra.local.pump import EventPump
from tests.support.callback_receiver import CallbackReceiver
from tests.support.stack import wait_for
from tests.support.task_records import LIVE_FOR_GOOD, task_record

TASKS = (task_record("T+1.", room_id="3560", user_id="rec"), task_record("T+2.", room_id="3561", user_id="rec"))


def test_a_slow_receiver_gets_every_event_once_and_in_order(aws_env: Settings, receiver: CallbackReceiver) -> None:
    """8 s per POST: slower than TRTC's 5 s rule, within cloudrec's 10 s deadline."""
    import app as chalice_app

    receiver.delay_s = 8.0
    for task in TASKS:  # callbacks are posted for tasks the service knows (live ones: the pump runs the reaper)
        wiring.task_store().admit(dataclasses.replace(task, lease_expires_ms=LIVE_FOR_GOOD), None, None, 10)
    sent = [(TASKS[0], 0), (TASKS[1], 0), (TASKS[0], 1)]
    for task, n in sent:
        wiring.event_queue().publish(Event(EventType.RECORDER_START, {"Status": 0, "n": n}, f"{task.task_id}{n}"),
                                     task, 1_000 + n)
    pump = EventPump(chalice_app, aws.client("sqs"), aws_env.aws_region)
    started = time.monotonic()
    pump.start()
    try:
        wait_for(lambda: len(receiver.accepted) >= len(sent), 60, "every event")
        time.sleep(2)  # nothing comes twice
    finally:
        pump.stop()
    print(f"{len(sent)} events to an 8 s receiver in {time.monotonic() - started:.1f} s")
    assert len(receiver.posts) == len(sent), "each event posted once"
    delivered = [json.loads(body)["EventInfo"] for body in receiver.accepted]
    for task in TASKS:
        assert [d["Payload"]["n"] for d in delivered if d["TaskId"] == task.task_id] == [
            n for t, n in sent if t is task]
    sqs = aws.client("sqs")
    dlq = sqs.get_queue_url(QueueName=events_dlq_name(aws_env))["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)
