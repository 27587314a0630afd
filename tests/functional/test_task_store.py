"""TaskStore against DynamoDB (moto): admission, leases, control and ending."""

from __future__ import annotations

import time

import pytest

from chalicelib import wiring
from chalicelib.config import Settings
from chalicelib.errors import ConcurrencyLimitError
from chalicelib.events import LeaveCode
from chalicelib.models import MixLayoutParams, SubscribeStreamUserIds
from chalicelib.task_store import AdmissionRaceError, TaskStore, robot_key
from chalicelib.tasks import ENDED, EXITED, IN_PROGRESS, StorageFile, TaskRecord
from tests.support.task_records import task_record

NOW = int(time.time() * 1000)


def _task(task_id: str, user: str = "rec", room: str = "1") -> TaskRecord:
    return task_record(task_id, sdkappid=1, room_id=room, user_id=user, created_ms=NOW, api_expires_ms=NOW + 10**7,
                       usersig_expires_s=NOW // 1000 + 10**6, lease_expires_ms=NOW + 30_000)


@pytest.fixture
def store(aws_env: Settings) -> TaskStore:
    return wiring.task_store()


def test_admit_counts_and_limits(store: TaskStore) -> None:
    store.admit(_task("a", user="u1"), None, None, max_concurrent=2)
    store.admit(_task("b", user="u2"), None, None, max_concurrent=2)
    with pytest.raises(ConcurrencyLimitError):
        store.admit(_task("c", user="u3"), None, None, max_concurrent=2)
    assert store.get("c") is None  # all or nothing
    assert store.active_count(1) == 2
    assert store.finish("a", NOW)
    assert not store.finish("a", NOW)  # exactly once
    assert store.active_count(1) == 1
    store.admit(_task("c", user="u3"), None, None, max_concurrent=2)


def test_robot_slot_race_is_detected(store: TaskStore) -> None:
    first = _task("a")
    store.admit(first, None, None, 10)
    with pytest.raises(AdmissionRaceError):  # a second Create that did not see the slot
        store.admit(_task("b"), None, None, 10)
    slot = store.robot_slot(robot_key(first))
    assert slot is not None and slot.task_id == "a"
    store.admit(_task("b"), slot, store.get("a"), 10)
    kicked = store.get("a")
    assert kicked is not None and (kicked.desired, kicked.leave_code, kicked.status) == ("stop", 101, EXITED)
    assert store.robot_slot(robot_key(first)).task_id == "b"  # type: ignore[union-attr]


def test_lease_heartbeat_and_takeover(store: TaskStore) -> None:
    store.admit(_task("a"), None, None, 10)
    assert store.acquire_lease("a", "r1", NOW, 5000) is not None
    assert store.acquire_lease("a", "r2", NOW + 1000, 5000) is None  # r1 still holds it
    beat = store.heartbeat("a", "r1", NOW + 2000, 5000)
    assert beat is not None and beat.lease_expires_ms == NOW + 7000
    assert store.heartbeat("a", "r2", NOW + 2000, 5000) is None
    assert store.acquire_lease("a", "r2", NOW + 8000, 5000) is not None  # expired: taken over
    assert store.heartbeat("a", "r1", NOW + 8500, 5000) is None  # r1 learns it lost the lease
    assert not store.finish("a", NOW + 9000, owner="r1")  # and may not end the task
    assert store.finish("a", NOW + 9000, owner="r2")


def test_status_control_and_files(store: TaskStore) -> None:
    store.admit(_task("a"), None, None, 10)
    assert store.mark_recording("a")
    assert store.update_config("a", SubscribeStreamUserIds(SubscribeAudioUserIds=["x"]), None)
    store.put_file("a", StorageFile("f.m3u8", "u", "audio", 123))
    task = store.get("a")
    assert task is not None and task.status == IN_PROGRESS and task.config_version == 1
    assert [f.FileName for f in task.storage_files()] == ["f.m3u8"]
    view = store.get_view("a")  # what Describe reads: the same, from a projection of the item
    assert view is not None and (view.sdkappid, view.status, view.api_expires_ms) == (1, IN_PROGRESS, NOW + 10**7)
    assert view.storage_files() == task.storage_files() and not view.to_vod
    assert store.get_view("nope") is None
    assert store.request_stop("a", LeaveCode.API_STOP)
    assert not store.update_config("a", None, MixLayoutParams(MixLayoutMode=1))  # a stopping task takes no changes
    assert not store.mark_recording("a")
    assert store.get("a").status == EXITED  # type: ignore[union-attr]
    store.finish("a", NOW)
    assert store.get("a").status == ENDED  # type: ignore[union-attr]
    assert not store.request_stop("a", LeaveCode.API_STOP)


def test_expired_live_lists_only_live_tasks_past_their_lease(store: TaskStore) -> None:
    for name in ("a", "b", "c"):
        store.admit(_task(name, user=name), None, None, 10)
    store.acquire_lease("a", "r", NOW, 1000)  # expires at NOW + 1000
    store.finish("c", NOW)
    assert store.expired_live(NOW + 2000) == ["a"]
    assert sorted(store.expired_live(NOW + 60_000)) == ["a", "b"]


def test_an_ended_task_and_its_storage_keys_expire(store: TaskStore, aws_env: Settings) -> None:
    """The customer's storage keys are kept no longer than the task needs them: DynamoDB deletes
    an ended task once its backup could be delivered (7 days) and a day more."""
    from chalicelib import aws

    store.admit(_task("ttl"), None, None, 10)
    assert "expires_at" not in (aws.client("dynamodb").get_item(TableName=aws_env.tasks_table,
                                                                 Key={"task_id": {"S": "ttl"}})["Item"])
    now_ms = int(time.time() * 1000)
    assert store.finish("ttl", now_ms, leave_code=LeaveCode.API_STOP)
    item = aws.client("dynamodb").get_item(TableName=aws_env.tasks_table, Key={"task_id": {"S": "ttl"}})["Item"]
    assert int(item["expires_at"]["N"]) == now_ms // 1000 + aws_env.backup_keep_s + 86400
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=aws_env.tasks_table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"
