"""`ip netns exec NAME make run` works inside a namespace prepared as DESIGN.md describes
(how tests outside the project run the stack): Janus bound to the namespace's veth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.stack import ROOT, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.netns]
NS = f"cloudrec-t{os.getpid()}"


@pytest.fixture
def namespace() -> Iterator[str]:
    with netns.namespace(NS) as name:
        yield name


def test_make_run_inside_a_namespace(namespace: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}
    env.update(CLOUDREC_RUN_DIR=str(tmp_path), CLOUDREC_JANUS_INTERFACE="v0", CLOUDREC_JANUS_IP="10.99.0.1",
               CLOUDREC_JANUS_RTP_PORTS="31000-31099")
    out = open(tmp_path / "make-run.out", "wb")
    make = subprocess.Popen(["ip", "netns", "exec", namespace, "make", "run"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: b"is up" in (tmp_path / "make-run.out").read_bytes() or make.poll() is not None, 120,
                 "make run in the namespace")
        assert make.poll() is None, (tmp_path / "make-run.out").read_text()
        janus_cfg = (tmp_path / "janus" / "janus.jcfg").read_text()
        assert 'ice_enforce_list = "v0"' in janus_cfg and 'interface = "10.99.0.1"' in janus_cfg
        result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-m",
                                 "tests.support.netns_client", "8000"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=90)
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["status"] == "Idle" and outcome["after_delete"] == "ResourceNotFound"
    finally:
        stop_group(make.pid)
        make.wait()
        out.close()
    assert b"stopping cloudrec local stack" in (tmp_path / "make-run.out").read_bytes()


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
