"""The recorder's control decisions, pass by pass, with no room and no store."""

from __future__ import annotations

import dataclasses

from chalicelib.events import LeaveCode
from chalicelib.subscription import PublishedStream, Publisher
from chalicelib.tasks import STOP, TaskRecord
from recorder_container.control import FOLLOW_S, JOIN_RETRY_S, PRESENCE_S, Control, IdleClock, Seen, Step
from tests.support.task_records import task_record

TASK = task_record("T")
ALICE = (Publisher("alice", (PublishedStream("0", "audio"),)),)


def seen(now: float, task: TaskRecord | None = TASK, **kw: object) -> Seen:
    return Seen(now=now, task=task, stop_signal=bool(kw.pop("stop", False)), joined=bool(kw.pop("joined", True)),
                **kw)  # type: ignore[arg-type]


def test_idle_clock_counts_only_while_no_anchor_is_present() -> None:
    clock = IdleClock(max_idle_s=10, now=0)
    assert not clock.expired(9.9) and clock.expired(10)
    clock.observe(True, 5)  # an anchor arrived (sending or not)
    assert not clock.expired(100)
    clock.observe(False, 100)  # the room emptied: the countdown starts now
    assert not clock.expired(109) and clock.expired(110)
    clock.observe(False, 105)  # still empty: the countdown keeps its start
    assert clock.expired(110)


def test_only_delete_and_idleness_end_the_task() -> None:
    control = Control(heartbeat_s=5, max_idle_s=30, now=0)
    assert control.decide(seen(1, None)) == Step(lease_lost=True)
    assert control.decide(seen(1, stop=True)) == Step(handover=True)  # the platform stops the recorder, not the task
    deleted = dataclasses.replace(TASK, desired=STOP)
    assert control.decide(seen(1, deleted)).leave == LeaveCode.API_STOP
    assert control.decide(seen(1, deleted, stop=True)).leave == LeaveCode.API_STOP  # ending anyway
    kicked = dataclasses.replace(TASK, desired=STOP, leave_code=int(LeaveCode.SAME_USER))
    assert control.decide(seen(1, kicked)).leave == LeaveCode.SAME_USER


def test_joins_and_retries_every_few_seconds() -> None:
    control = Control(heartbeat_s=5, max_idle_s=300, now=0)
    assert control.decide(seen(0, joined=False)) == Step(join=True)
    assert control.decide(seen(1, joined=False)) == Step()  # not yet again
    assert control.decide(seen(JOIN_RETRY_S, joined=False)) == Step(join=True)


def test_follows_on_news_on_modify_and_now_and_then() -> None:
    control = Control(heartbeat_s=5, max_idle_s=300, now=0)
    control.joined((), TASK.config_version, now=0)
    step = control.decide(seen(0.5, publishers=()))
    assert not step.follow and step.poll_presence
    assert control.decide(seen(1, publishers=ALICE)).follow  # someone published
    assert not control.decide(seen(2, publishers=ALICE)).follow
    assert control.decide(seen(3, dataclasses.replace(TASK, config_version=1), publishers=ALICE)).follow  # Modify
    assert not control.decide(seen(4, dataclasses.replace(TASK, config_version=1), publishers=ALICE)).follow
    assert control.decide(seen(3 + FOLLOW_S, dataclasses.replace(TASK, config_version=1), publishers=ALICE)).follow


def test_presence_is_polled_every_few_seconds_and_drives_max_idle_time() -> None:
    control = Control(heartbeat_s=5, max_idle_s=10, now=0)
    assert control.decide(seen(0)).poll_presence
    assert not control.decide(seen(1, anchors=True)).poll_presence  # an anchor is there: no countdown
    assert control.decide(seen(PRESENCE_S)).poll_presence
    assert control.decide(seen(50)).leave is None  # still counted as present until a poll says otherwise
    control.decide(seen(51, anchors=False))  # the room emptied: counting from here
    assert control.decide(seen(60.9)).leave is None
    assert control.decide(seen(61)).leave == LeaveCode.IDLE


def test_an_unjoined_robot_counts_as_an_empty_room() -> None:
    control = Control(heartbeat_s=5, max_idle_s=10, now=0)
    control.decide(seen(0, anchors=True))  # present while joined
    assert control.decide(seen(5, joined=False)).leave is None  # the room went away: counting from here
    assert control.decide(seen(14.9, joined=False)).leave is None
    assert control.decide(seen(15, joined=False)).leave == LeaveCode.IDLE


def test_heartbeat_every_heartbeat_interval() -> None:
    control = Control(heartbeat_s=5, max_idle_s=30, now=0)
    assert [control.heartbeat_due(t) for t in (0, 1, 4.9, 5, 6, 10)] == [True, False, False, True, False, True]
