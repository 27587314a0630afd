"""A task's recorder through the fleet: the dispatch is recorded before a worker can read it,
exactly one of the workers and the fallback takes it, a recorder that cannot start leaves it
waiting, and the recordings of a worker that stopped go on elsewhere."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from chalicelib import reaper, wiring
from chalicelib.config import Settings
from chalicelib.dispatch import COLD_SUFFIX, Dispatch, Fleet, worker_handle
from chalicelib.errors import ServiceError
from chalicelib.recording_cost import SINGLE_BASE
from chalicelib.task_store import TaskStore
from tests.support.fakes import FakeLauncher
from tests.support.task_records import task_record

NOW = time.time()


@pytest.fixture
def store(aws_env: Settings) -> TaskStore:
    return wiring.task_store()


def fleet(settings: Settings, launcher: FakeLauncher) -> Fleet:
    return Fleet(wiring.task_store(), launcher, lambda: wiring.aws.client("sqs"),
                 dataclasses.replace(settings, claim_wait_s=1.0))


def admitted(store: TaskStore, task_id: str, **fields: Any) -> Any:
    now_ms = int(NOW * 1000)
    task = task_record(task_id, user_id=f"rec_{task_id}", created_ms=now_ms, api_expires_ms=now_ms + 10**7,
                       usersig_expires_s=int(NOW) + 10**6, lease_expires_ms=now_ms + 30_000, **fields)
    store.admit(task, None, None, 10)
    return task


def messages(queue: str, wait_s: int = 0) -> list[Dispatch]:
    sqs = wiring.aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s).get("Messages", [])
    return [d for m in got if (d := Dispatch.parse(m["Body"])) is not None]


def test_a_dispatch_is_recorded_then_offered_to_the_workers(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    task = admitted(store, "a")
    fleet(aws_env, launcher).start(task, 0)
    stored = store.get("a")
    assert stored is not None and stored.launch_handle and stored.launch_handle.startswith("dispatch:0:")
    offered = messages(aws_env.dispatch_queue)
    assert offered == [Dispatch("a", 0, stored.launch_handle, SINGLE_BASE)]
    assert messages(aws_env.fallback_queue) == []  # not before the claim wait
    assert messages(aws_env.fallback_queue, wait_s=2) == offered
    assert launcher.launched == []  # no dedicated recorder while a worker may take it


def test_one_claim_wins_and_the_fallback_then_starts_nothing(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    f = fleet(aws_env, launcher)
    f.start(admitted(store, "a"), 0)
    d = messages(aws_env.dispatch_queue)[0]
    assert store.claim("a", d.handle, worker_handle("w1", d), host="w1") == 1400000001
    assert store.claim("a", d.handle, worker_handle("w2", d), host="w2") is None  # a second worker: too late
    assert f.fall_back(d) is False
    assert launcher.launched == []
    stored = store.get("a")
    assert stored is not None and stored.launch_handle == worker_handle("w1", d)
    assert store.hosted_by("w1") == {"a": worker_handle("w1", d)} and store.hosted_by("w2") == {}


def test_an_unclaimed_task_goes_to_a_dedicated_recorder_once(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    f = fleet(aws_env, launcher)
    f.start(admitted(store, "a"), 0)
    d = messages(aws_env.dispatch_queue)[0]
    assert f.fall_back(d) is True
    assert f.fall_back(d) is False  # the fallback message delivered twice
    assert store.claim("a", d.handle, worker_handle("w1", d), host="w1") is None  # a worker after the wait
    assert launcher.launched == [("a", 0)]
    stored = store.get("a")
    assert stored is not None and stored.launch_handle == "fake:1"


def test_a_dedicated_recorder_that_cannot_start_leaves_the_task_waiting(aws_env: Settings,
                                                                        store: TaskStore) -> None:
    launcher = FakeLauncher(fail=True)
    f = fleet(aws_env, launcher)
    f.start(admitted(store, "a"), 0)
    d = messages(aws_env.dispatch_queue)[0]
    with pytest.raises(ServiceError):
        f.fall_back(d)  # the message comes back, and a worker with room may take it meanwhile
    stored = store.get("a")
    assert stored is not None and stored.launch_handle == d.handle
    assert not stored.launch_handle.endswith(COLD_SUFFIX)
    assert store.claim("a", d.handle, worker_handle("w1", d), host="w1") is not None


def test_a_stopped_worker_s_recordings_are_dispatched_again(aws_env: Settings, store: TaskStore) -> None:
    launcher = FakeLauncher()
    f = fleet(aws_env, launcher)
    for task_id in ("a", "b", "c"):
        f.start(admitted(store, task_id), 0)
    first = {d.task_id: d for d in messages(aws_env.dispatch_queue)}
    store.claim("a", first["a"].handle, worker_handle("w1", first["a"]), host="w1")
    store.claim("b", first["b"].handle, worker_handle("w1", first["b"]), host="w1")
    store.claim("c", first["c"].handle, worker_handle("w2", first["c"]), host="w2")
    store.request_stop("b", reaper.LeaveCode.API_STOP)  # stopping: ended, not relaunched
    handled = reaper.worker_exited(store, f, wiring.event_queue(), aws_env, "w1", "killed", NOW)
    assert handled == 2
    again = messages(aws_env.dispatch_queue)
    assert [(d.task_id, d.ha_index) for d in again] == [("a", 1)]
    a, b, c = store.get("a"), store.get("b"), store.get("c")
    assert a is not None and a.ha_count == 1 and a.launch_handle == again[0].handle
    assert b is not None and b.status == "Ended"
    assert c is not None and c.launch_handle == worker_handle("w2", first["c"])  # the other worker's: untouched
    assert reaper.worker_exited(store, f, wiring.event_queue(), aws_env, "w1", "again", NOW) == 0


def test_create_through_the_fleet_answers_before_any_recorder_starts(aws_env: Settings, registry: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from chalice.test import Client

    import app as chalice_app
    from tests.functional.test_api import call, create_params

    launcher = FakeLauncher()
    monkeypatch.setenv("CLOUDREC_CLAIM_WAIT_S", "3")
    wiring.reset()
    monkeypatch.setattr(wiring, "launcher", lambda: launcher)
    with Client(chalice_app.app) as client:
        task_id = call(client, "CreateCloudRecording", create_params())["TaskId"]
    assert [d.task_id for d in messages(aws_env.dispatch_queue)] == [task_id]
    assert launcher.launched == []
