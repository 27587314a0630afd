"""Launch, lease and stop of real recorder processes against real Janus signalling:
the robot joins the room, heartbeats, follows Delete, MaxIdleTime and a re-entering robot,
is relaunched when it dies, and every step reaches the customer as a signed callback."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.trtc.v20190722 import models

from tests.support.janus_http import JanusHttp, robots_in
from tests.support.sdk import create_request, delete, describe, ended
from tests.support.stack import SDKAPPID, LocalStack, recorder_pid, wait_for

pytestmark = pytest.mark.e2e


def heartbeat_ms(stack: LocalStack, task_id: str) -> int:
    item = stack.task_item(task_id)
    assert item is not None
    return int(item["heartbeat_ms"]["N"])


def create(stack: LocalStack, user: str, room: str, **record: Any) -> str:
    return str(stack.client().CreateCloudRecording(create_request(user, room=room, **record)).TaskId)


def test_robot_joins_heartbeats_and_leaves_on_delete(stack: LocalStack, janus: JanusHttp) -> None:
    janus.create_room("7001")
    alice = janus.join("7001", "alice")  # an anchor who is present but sends nothing
    task_id = create(stack, "rec_join", "7001")
    wait_for(lambda: robots_in(janus, "7001") == ["rec_join"], 15, "the robot in the room")
    started = stack.callbacks.wait(task_id, 301)
    assert started["EventGroupId"] == 3 and started["EventInfo"]["Payload"] == {"Status": 0}
    assert started["EventInfo"]["RoomId"] == 7001 and started["EventInfo"]["UserId"] == "rec_join"
    first_beat = heartbeat_ms(stack, task_id)
    wait_for(lambda: heartbeat_ms(stack, task_id) > first_beat, 5, "a heartbeat")
    assert describe(stack, task_id).Status == "Idle"  # nobody publishes
    delete(stack, task_id)
    wait_for(lambda: robots_in(janus, "7001") == [], 10, "the robot to leave")
    stopped = stack.callbacks.wait(task_id, 302)
    assert stopped["EventInfo"]["Payload"] == {"LeaveCode": 0}
    wait_for(lambda: ended(stack, task_id), 10, "the task to end")
    wait_for(lambda: recorder_pid(task_id, stack.run_dir) is None, 10, "the recorder process to exit")
    assert [p["display"] for p in janus.participants("7001")] == ["alice"]
    janus.leave(alice)
    assert stack.callbacks.bad_signatures == 0


def test_max_idle_time_counts_only_without_anchors(stack: LocalStack, janus: JanusHttp) -> None:
    janus.create_room("7002")
    bob = janus.join("7002", "bob")
    task_id = create(stack, "rec_idle", "7002", MaxIdleTime=5)
    wait_for(lambda: robots_in(janus, "7002"), 15, "the robot in the room")
    time.sleep(7)  # longer than MaxIdleTime while bob is present
    assert describe(stack, task_id).Status == "Idle"
    janus.leave(bob)
    left = time.monotonic()
    event = stack.callbacks.wait(task_id, 302, timeout=20)
    assert event["EventInfo"]["Payload"] == {"LeaveCode": 99}
    assert 4 <= time.monotonic() - left <= 12
    wait_for(lambda: ended(stack, task_id), 10, "the task to end")


def test_empty_room_and_missing_room_end_after_max_idle_time(stack: LocalStack) -> None:
    task_id = create(stack, "rec_noroom", "7099", MaxIdleTime=5)  # no such Janus room
    assert stack.callbacks.wait(task_id, 302, timeout=20)["EventInfo"]["Payload"] == {"LeaveCode": 99}


def test_same_robot_reentering_stops_the_earlier_task(stack: LocalStack, janus: JanusHttp) -> None:
    janus.create_room("7003")
    first = create(stack, "rec_same", "7003")
    wait_for(lambda: robots_in(janus, "7003"), 15, "the first robot")
    second = create(stack, "rec_same", "7003", MaxIdleTime=120)  # other parameters: a new task
    assert second != first
    assert stack.callbacks.wait(first, 302)["EventInfo"]["Payload"] == {"LeaveCode": 101}
    wait_for(lambda: ended(stack, first), 10, "the earlier task to end")
    stack.callbacks.wait(second, 301)
    wait_for(lambda: robots_in(janus, "7003") == ["rec_same"], 15, "the new robot in the room")
    assert describe(stack, second).Status == "Idle"
    # an identical Create retried within a minute returns the running task instead of kicking it
    retry = create_request("rec_same", room="7003", MaxIdleTime=120)
    again = stack.client().CreateCloudRecording(retry).TaskId
    assert again != first
    delete(stack, second)
    wait_for(lambda: ended(stack, second), 15, "the second task to end")


def test_identical_retry_returns_the_same_task(stack: LocalStack) -> None:
    request = create_request("rec_retry", room="7004")
    first = stack.client().CreateCloudRecording(request).TaskId
    assert stack.client().CreateCloudRecording(request).TaskId == first
    delete(stack, first)


def test_dead_recorder_is_relaunched_as_ha1(stack: LocalStack, janus: JanusHttp) -> None:
    janus.create_room("7005")
    task_id = create(stack, "rec_ha", "7005")
    stack.callbacks.wait(task_id, 301)
    pid = wait_for(lambda: recorder_pid(task_id, stack.run_dir), 10, "the recorder process")
    os.kill(pid, signal.SIGKILL)
    failover = stack.callbacks.wait(task_id, 306, timeout=40)
    assert failover["EventInfo"]["Payload"] == {"Status": 0}
    new_pid = wait_for(lambda: recorder_pid(task_id, stack.run_dir), 10, "the relaunched recorder")
    assert new_pid != pid
    assert any(p.name.endswith("-ha1.log") for p in stack.recorder_logs())
    item = stack.task_item(task_id)
    assert item is not None and item["ha_count"]["N"] == "1"
    wait_for(lambda: robots_in(janus, "7005") == ["rec_ha"], 90, "the relaunched robot in the room")
    delete(stack, task_id)
    wait_for(lambda: ended(stack, task_id), 15, "the task to end")


def test_modify_reaches_the_stored_task(stack: LocalStack) -> None:
    task_id = create(stack, "rec_mod", "7006")
    modify = models.ModifyCloudRecordingRequest()
    modify.from_json_string(json.dumps({"SdkAppId": SDKAPPID, "TaskId": task_id,
                                        "SubscribeStreamUserIds": {"SubscribeVideoUserIds": ["u1", "u2.*$"]}}))
    stack.client().ModifyCloudRecording(modify)
    item = stack.task_item(task_id)
    assert item is not None and item["config_version"]["N"] == "1"
    assert json.loads(item["subscribe_json"]["S"]) == {"SubscribeVideoUserIds": ["u1", "u2.*$"]}
    delete(stack, task_id)


def _environ(pid: int | str) -> dict[str, str]:
    return dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_recorder_runs_with_credentials_for_its_own_task_only(stack: LocalStack) -> None:
    """What a recorder holds (it parses media from anyone in the room): an assumed-role session
    that STS was asked to limit to this task, and no key to anything else. A warm worker's
    recorder is forked from a parent that never held a credential or the stack's sealing key."""
    task_id = create(stack, "rec_scoped", "7007")
    pid = wait_for(lambda: recorder_pid(task_id, stack.run_dir), 15, "the recorder process")
    zygote = _parent(pid)
    worker = _parent(zygote)
    assert b"recorder_container.worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
    for inherited in (_environ(str(pid)), _environ(str(zygote))):
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CLOUDREC_RECORDER_ROLE_ARN",
                    "CLOUDREC_SEAL_KEY", "CLOUDREC_SECRET_KEY"} & inherited.keys()
    assert "AWS_SECRET_ACCESS_KEY" in _environ(str(worker))  # what it was started with, and keeps to itself
    sessions = json.loads(urllib.request.urlopen(  # what the AWS emulation's STS handed out
        f"http://127.0.0.1:{stack.env['CLOUDREC_AWS_PORT']}/moto-api/data.json", timeout=10).read())["sts"]
    session = next(s for s in sessions["AssumedRole"] if s["arn"].endswith(f"/rec-{task_id}"))
    handed = [json.loads(p.read_text()) for p in Path(tempfile.gettempdir()).glob("cloudrec-credentials-*/credentials.json")]
    assert session["access_key_id"] in [c["AccessKeyId"] for c in handed]  # the recorder's file, renewed by the worker
    policy = json.loads(session["policy"])
    keys = [c["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] for c in
            (st.get("Condition", {}) for st in policy["Statement"]) if "ForAllValues:StringEquals" in c]
    assert keys == [[task_id], [f"app#{SDKAPPID}"], [f"active#{SDKAPPID}"]]
    delete(stack, task_id)
    wait_for(lambda: ended(stack, task_id), 15, "the task to end")
