"""`ip netns exec NAME make run` works inside a namespace prepared as DESIGN.md describes
(how tests outside the project run the stack): Janus bound to the namespace's veth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.stack import ROOT, processes_of, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.netns]
NS = f"cloudrec-t{os.getpid()}"
STOP_ROUNDS = 20


@pytest.fixture
def namespace() -> Iterator[str]:
    with netns.namespace(NS) as name:
        yield name


def make_run(namespace: str, run_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`make run` inside the namespace, up; its process and environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}
    env.update(CLOUDREC_RUN_DIR=str(run_dir), CLOUDREC_JANUS_INTERFACE="v0", CLOUDREC_JANUS_IP="10.99.0.1",
               CLOUDREC_JANUS_RTP_PORTS="31000-31099")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "make-run.out", "wb") as out:
        make = subprocess.Popen(["ip", "netns", "exec", namespace, "make", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: b"is up" in (run_dir / "make-run.out").read_bytes() or make.poll() is not None, 120,
             "make run in the namespace")
    assert make.poll() is None, (run_dir / "make-run.out").read_text()
    return make, env


def client(namespace: str, env: dict[str, str], *args: str) -> dict[str, str]:
    """The SDK scenario of tests/support/netns_client.py, inside the namespace; what it printed."""
    result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.support.netns_client",
                             "8000", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_make_run_inside_a_namespace(namespace: str, tmp_path: Path) -> None:
    make, env = make_run(namespace, tmp_path)
    try:
        janus_cfg = (tmp_path / "janus" / "janus.jcfg").read_text()
        assert 'ice_enforce_list = "v0"' in janus_cfg and 'interface = "10.99.0.1"' in janus_cfg
        outcome = client(namespace, env)
        assert outcome["status"] == "Idle" and outcome["after_delete"] == "ResourceNotFound"
    finally:
        stop_group(make.pid)
        make.wait()
    assert b"stopping cloudrec local stack" in (tmp_path / "make-run.out").read_bytes()


def test_make_run_stops_quietly_within_10_s_every_time(namespace: str, tmp_path: Path) -> None:
    """SIGTERM to `make run`'s process group (what a terminal's Ctrl-C neighbour does) while a
    recorder is in a room: everything stops in order, quickly, without a traceback."""
    took = []
    for n in range(STOP_ROUNDS):
        run_dir = tmp_path / f"round{n}"
        make, env = make_run(namespace, run_dir)
        try:
            client(namespace, env, "--keep")  # a task whose robot waits in its room
            started = time.monotonic()
        finally:
            try:
                stop_group(make.pid)
            except AssertionError as exc:
                raise AssertionError(f"round {n}: {exc}\n{(run_dir / 'make-run.out').read_text()[-3000:]}") from None
            make.wait()
        took.append(time.monotonic() - started)
        logs = [run_dir / "make-run.out", *sorted((run_dir / "logs").glob("*.log")),
                *sorted((run_dir / "recorders").glob("*.log"))]
        for log in logs:
            assert "Traceback" not in log.read_text(errors="replace"), (n, log.name, log.read_text()[-3000:])
        assert "stopping cloudrec local stack" in (run_dir / "make-run.out").read_text()
    print(f"make run stopped in {min(took):.1f}–{max(took):.1f} s over {len(took)} rounds")
    assert max(took) < 10, took


def test_the_servers_go_when_the_stack_is_killed(namespace: str, tmp_path: Path) -> None:
    """A stack killed outright (SIGKILL: no chance to stop anything) leaves no server behind,
    though each runs in a session of its own."""
    make, _ = make_run(namespace, tmp_path)
    try:
        servers = processes_of(tmp_path)
        stack_pid = next(pid for pid in servers
                         if b"infra.local.stack" in Path(f"/proc/{pid}/cmdline").read_bytes())
        assert len(servers) >= 4  # the stack, moto, Janus, the API
        os.kill(stack_pid, signal.SIGKILL)
        wait_for(lambda: not processes_of(tmp_path), 15, "the servers to go with the stack")
    finally:
        stop_group(make.pid)
        make.wait()


def _group_alive(pgid: int) -> list[str]:
    """The command lines of the group's processes that still run (zombies left to an init that
    does not reap them do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return alive


def stop_group(pgid: int, timeout: float = 60) -> None:
    """SIGTERM (what Ctrl-C's neighbour would send) to make and everything it started, and wait
    for all of them: make exits at once, the stack only after stopping its children."""
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    try:
        wait_for(lambda: not _group_alive(pgid), timeout, "make run to stop")
    except AssertionError as exc:
        left = _group_alive(pgid)
        os.killpg(pgid, signal.SIGKILL)
        raise AssertionError(f"{exc}; still running: {left}") from None
