"""Tasks whose recorder stopped heartbeating are relaunched (ha1..ha3) or ended."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib import reaper, wiring
from chalicelib.config import Settings
from chalicelib.dispatch import Direct
from chalicelib.events import LeaveCode
from chalicelib.task_store import TaskStore
from chalicelib.tasks import ENDED, TaskRecord
from tests.support.fakes import FakeLauncher
from tests.support.queued import queued_events
from tests.support.task_records import task_record

NOW = time.time()


def _task(task_id: str, **kw: Any) -> TaskRecord:
    now_ms = int(NOW * 1000)
    fields: dict[str, Any] = {"sdkappid": 1, "room_id": "1", "user_id": task_id, "created_ms": now_ms,
                              "api_expires_ms": now_ms + 10**7, "usersig_expires_s": int(NOW) + 10**6,
                              "lease_expires_ms": now_ms + 1000}
    return task_record(task_id, **{**fields, **kw})


@pytest.fixture
def store(aws_env: Settings) -> TaskStore:
    return wiring.task_store()


def test_plan() -> None:
    settings = Settings.from_env({})
    assert reaper.plan(_task("a"), settings, NOW).action == "relaunch"
    assert reaper.plan(_task("a", desired="stop"), settings, NOW).action == "end"
    assert reaper.plan(_task("a", ha_count=3), settings, NOW).action == "end"
    assert reaper.plan(_task("a", usersig_expires_s=int(NOW) - 1), settings, NOW).action == "end"


def test_reap_relaunches_then_gives_up(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    store.admit(_task("a"), None, None, 10)
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, NOW) == 0  # lease still valid
    later = NOW + 5
    for ha in (1, 2, 3):
        assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, later) == 1
        assert launcher.launched[-1] == ("a", ha)
        later += aws_env.launch_grace_s + 1
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, later) == 1
    task = store.get("a")
    assert task is not None and task.status == ENDED and task.leave_code == 3
    assert store.active_count(1) == 0
    events = queued_events()
    assert [e["EventType"] for e in events] == [302]
    assert events[0]["EventInfo"]["Payload"] == {"LeaveCode": 3}  # type: ignore[index]


def test_a_recorder_that_cannot_start_costs_no_ha_attempt_and_holds_up_nobody(aws_env: Settings,
                                                                                store: TaskStore) -> None:
    launcher = FakeLauncher(failing={"a"})
    for task_id in ("a", "b"):
        store.admit(_task(task_id), None, None, 10)
    later = NOW + 5
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, later) == 2
    assert launcher.launched == [("b", 1)]  # the sweep went on past "a"
    stuck = store.get("a")
    assert stuck is not None and stuck.ha_count == 0 and stuck.status != ENDED  # kept, no HA attempt spent
    assert stuck.lease_expires_ms == int(later * 1000) + reaper.LAUNCH_RETRY_S * 1000  # tried again later
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, later + 1) == 0  # not before that
    launcher.failing.clear()
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, later + reaper.LAUNCH_RETRY_S + 1) >= 1
    assert ("a", 1) in launcher.launched
    assert queued_events() == []  # no 302: the task lives on


def test_reap_ends_a_stopping_task_whose_recorder_is_gone(aws_env: Settings, store: TaskStore) -> None:
    store.admit(_task("a"), None, None, 10)
    store.request_stop("a", LeaveCode.API_STOP)
    reaper.reap(store, Direct(store, FakeLauncher()), wiring.event_queue(), aws_env, NOW + 5)
    task = store.get("a")
    assert task is not None and task.status == ENDED and task.leave_code == 0


def test_a_stopped_recorder_is_replaced_at_once(aws_env: Settings, store: TaskStore) -> None:
    """ECS (or the local launcher) reports the recorder's exit: the task is relaunched without
    waiting for its lease, once, and only for the recorder the task runs on now."""
    launcher, queue = FakeLauncher(), wiring.event_queue()
    store.admit(_task("a", lease_expires_ms=int(NOW * 1000) + 20_000), None, None, 10)
    store.set_launch("a", "arn:1")
    assert reaper.recorder_exited(store, Direct(store, launcher), queue, aws_env, "a", "arn:0", "old", NOW) == 0  # not its recorder
    assert reaper.recorder_exited(store, Direct(store, launcher), queue, aws_env, "a", "arn:1", "killed", NOW) == 1
    assert launcher.launched == [("a", 1)] and launcher.stopped == ["arn:1"]
    task = store.get("a")
    assert task is not None and task.ha_count == 1 and task.launch_handle == "fake:1"
    assert reaper.recorder_exited(store, Direct(store, launcher), queue, aws_env, "a", "arn:1", "again", NOW) == 0
    assert reaper.reap(store, Direct(store, launcher), queue, aws_env, NOW + 5) == 0  # the sweep finds nothing left to do
    assert launcher.launched == [("a", 1)]


def test_a_recorder_that_ended_its_task_is_not_replaced(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    store.admit(_task("a"), None, None, 10)
    store.set_launch("a", "pid:7")
    store.finish("a", int(NOW * 1000), leave_code=LeaveCode.API_STOP)
    assert reaper.recorder_exited(store, Direct(store, launcher), wiring.event_queue(), aws_env, "a", "pid:7", "exit 0", NOW) == 0
    assert launcher.launched == []


def test_a_recorder_that_dies_after_leaving_is_not_relaunched_and_its_302_not_repeated(
        aws_env: Settings, store: TaskStore) -> None:
    """It left for MaxIdleTime, sent its 302, and died while draining its uploads."""
    launcher = FakeLauncher()
    store.admit(_task("a"), None, None, 10)
    assert store.acquire_lease("a", "rec-1", int(NOW * 1000), 1000) is not None
    assert store.leaving("a", "rec-1", LeaveCode.IDLE)
    assert not store.leaving("a", "rec-2", LeaveCode.IDLE)  # only the lease holder
    assert reaper.reap(store, Direct(store, launcher), wiring.event_queue(), aws_env, NOW + 5) == 1
    task = store.get("a")
    assert task is not None and task.status == ENDED and task.leave_code == int(LeaveCode.IDLE)
    assert launcher.launched == [] and queued_events() == []
