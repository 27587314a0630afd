"""The warm fleet on the local stack: a Create is claimed by a warm worker and its robot is in
the room within a second or two; a burst of twenty is answered in full and recorded; the
recordings of a worker that dies go on on the others within seconds; and only a full fleet
sends a recording to a dedicated recorder, whose cold start (simulated) the user then waits for.
Start-latency figures are printed here and measured properly in bench/start_latency.py."""

from __future__ import annotations

import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.local.stack import running
from tests.support.janus_http import JanusHttp, robots_in
from tests.support.sdk import create_request, delete, describe, ended
from tests.support.stack import LocalStack, running_stack, wait_for

pytestmark = pytest.mark.e2e


def handle_of(stack: LocalStack, task_id: str) -> str:
    item = stack.task_item(task_id)
    return str(item["launch_handle"]["S"]) if item and "launch_handle" in item else ""


def worker_of(handle: str) -> str:
    return handle.removeprefix("worker:").split("/", 1)[0] if handle.startswith("worker:") else ""


def workers() -> dict[str, int]:
    """The running warm workers: their pids by worker id."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"recorder_container.worker" in (proc / "cmdline").read_bytes():
                env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
                if b"CLOUDREC_WORKER_ID" in env and running(int(proc.name)):
                    found[env[b"CLOUDREC_WORKER_ID"].decode()] = int(proc.name)
        except OSError:
            continue
    return found


def recording(stack: LocalStack, janus: JanusHttp, rooms: list[str], user: str) -> dict[str, str]:
    """A recording of each room (its robot in it): the worker each one runs on, by TaskId."""
    for room in rooms:
        janus.create_room(room)
    tasks = [create(stack, f"{user}_{room}", room)[0] for room in rooms]
    for task_id in tasks:
        stack.callbacks.wait(task_id, 301, 30)
    return {task_id: worker_of(handle_of(stack, task_id)) for task_id in tasks}


def joined_after(stack: LocalStack, task_id: str, created_s: float, timeout: float = 60) -> float:
    """Seconds from the Create to the robot in the room, as the recorder's 301 says (EventMsTs)."""
    event = stack.callbacks.wait(task_id, 301, timeout)
    assert event["EventInfo"]["Payload"] == {"Status": 0}
    return float(event["EventInfo"]["EventMsTs"]) / 1000 - created_s


def create(stack: LocalStack, user: str, room: str) -> tuple[str, float]:
    created = time.time()
    return str(stack.client().CreateCloudRecording(create_request(user, room=room)).TaskId), created


def stop_all(stack: LocalStack, task_ids: list[str]) -> None:
    for task_id in task_ids:
        delete(stack, task_id)
    for task_id in task_ids:
        wait_for(lambda t=task_id: ended(stack, t), 30, "the task to end")


def test_a_create_is_claimed_by_a_warm_worker(stack: LocalStack, janus: JanusHttp) -> None:
    janus.create_room("7101")
    task_id, created = create(stack, "rec_warm", "7101")
    joined = joined_after(stack, task_id, created)
    assert handle_of(stack, task_id).startswith("worker:local-")  # a worker's, not a dedicated recorder's
    assert robots_in(janus, "7101") == ["rec_warm"]
    assert describe(stack, task_id).Status == "Idle"
    print(f"Create → robot in the room: {joined:.2f} s")
    stop_all(stack, [task_id])
    assert not robots_in(janus, "7101")


def test_a_burst_of_twenty_creates_is_answered_and_recorded(stack: LocalStack, janus: JanusHttp) -> None:
    rooms = [str(7110 + i) for i in range(20)]
    for room in rooms:
        janus.create_room(room)

    def one(room: str) -> tuple[str, float]:
        return create(stack, f"rec_burst_{room}", room)

    with ThreadPoolExecutor(len(rooms)) as pool:  # every Create answered: no connection refused or reset
        created = list(pool.map(one, rooms))
    joined = sorted(joined_after(stack, task_id, at) for task_id, at in created)
    handles = [handle_of(stack, task_id) for task_id, _ in created]
    warm = sum(h.startswith("worker:") for h in handles)
    assert warm + sum(h.startswith("pid:") for h in handles) == len(rooms), handles  # each on a recorder
    for room in rooms:
        assert robots_in(janus, room) == [f"rec_burst_{room}"]
    print(f"burst of 20: robot in the room p50 {statistics.median(joined):.2f} s, "
          f"p95 {joined[18]:.2f} s, max {joined[-1]:.2f} s; {warm} warm, {len(rooms) - warm} cold")
    stop_all(stack, [t for t, _ in created])


def test_a_dead_worker_s_recordings_go_on_on_the_other_workers(stack: LocalStack, janus: JanusHttp) -> None:
    rooms = [str(7140 + i) for i in range(6)]  # two workers: one of them hosts three or more
    hosts = recording(stack, janus, rooms, "rec_fail")
    tasks = list(hosts)
    victim = max(set(hosts.values()), key=list(hosts.values()).count)
    orphans = [task_id for task_id, host in hosts.items() if host == victim]
    assert victim and len(orphans) >= 3, hosts
    before = workers()
    os.kill(before[victim], signal.SIGKILL)
    killed = time.monotonic()

    def moved() -> bool:
        return all(worker_of(handle_of(stack, t)) not in ("", victim) for t in orphans)

    wait_for(moved, 10, "every recording of the dead worker on another worker")
    claimed = time.monotonic() - killed
    for task_id in orphans:
        assert stack.callbacks.wait(task_id, 306, 30)["EventInfo"]["Payload"] == {"Status": 0}
        assert handle_of(stack, task_id).startswith("worker:")
        item = stack.task_item(task_id)
        assert item is not None and item["ha_count"]["N"] == "1"
    for room in rooms:
        wait_for(lambda r=room: robots_in(janus, r) == [f"rec_fail_{r}"], 30, "the robot back in the room")
    print(f"worker killed with {len(orphans)} recordings: all claimed by other workers after {claimed:.1f} s")
    wait_for(lambda: set(workers()) - set(before), 30, "a worker in the dead one's place")
    stop_all(stack, tasks)


def test_a_stopping_worker_hands_its_recordings_on_and_exits(stack: LocalStack, janus: JanusHttp) -> None:
    """SIGTERM (a deployment, a scale-in the protection did not hold off): the worker claims
    nothing more, its recorders hand their tasks over, and it exits; nothing ends."""
    rooms = ["7160", "7161", "7162", "7163"]
    hosts = recording(stack, janus, rooms, "rec_drain")
    tasks = list(hosts)
    leaving = hosts[tasks[0]]
    moving = [t for t, host in hosts.items() if host == leaving]
    pid = workers()[leaving]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not running(pid), 30, "the worker to exit")
    for task_id in moving:
        assert stack.callbacks.wait(task_id, 306, 30)["EventInfo"]["Payload"] == {"Status": 0}
        wait_for(lambda t=task_id: worker_of(handle_of(stack, t)) not in ("", leaving), 10, "another worker")
    assert not any(stack.callbacks.of(t, 302) for t in tasks)  # the recordings go on
    for room in rooms:
        wait_for(lambda r=room: robots_in(janus, r) == [f"rec_drain_{r}"], 30, "the robot in the room")
    stop_all(stack, tasks)


def test_only_a_full_fleet_sends_a_recording_to_a_cold_start(tmp_path: Path) -> None:
    """One worker with room for one recording, and dedicated recorders that take 8 s to start:
    the first Create is warm, the second waits the claim wait and then the cold start."""
    with running_stack(tmp_path, CLOUDREC_WARM_WORKERS="1", CLOUDREC_WORKER_CAPACITY="0.05",
                       CLOUDREC_COLD_START_S="8") as small:
        janus = JanusHttp(small.janus_url)
        janus.create_room("7201")
        janus.create_room("7202")
        first, first_at = create(small, "rec_first", "7201")
        warm = joined_after(small, first, first_at)
        second, second_at = create(small, "rec_second", "7202")
        time.sleep(4)  # past the claim wait: the dedicated recorder is starting, slowly
        assert describe(small, second).Status == "Idle"
        assert not robots_in(janus, "7202")
        cold = joined_after(small, second, second_at)
        assert handle_of(small, first).startswith("worker:"), handle_of(small, first)
        assert handle_of(small, second).startswith("pid:"), handle_of(small, second)
        assert cold >= 8 > warm, (cold, warm)
        print(f"warm start {warm:.2f} s; with the fleet full, cold start {cold:.2f} s")
        stop_all(small, [first, second])
        janus.close()
