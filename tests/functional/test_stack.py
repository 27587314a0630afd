"""`make run` (infra/local/stack.py) checks every port it will listen on before it starts
anything, and says which is taken and which variable moves it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.stack import PortTakenError, Stack, listeners, stack_env, start
from tests.support.stack import free_port, processes_of

ROOT = Path(__file__).resolve().parents[2]
PORTS = ("CLOUDREC_API_PORT", "CLOUDREC_AWS_PORT", "CLOUDREC_VOD_PORT", "CLOUDREC_JANUS_HTTP_PORT",
         "CLOUDREC_JANUS_WS_PORT")


def _user_env(run_dir: Path, **extra: str) -> dict[str, str]:
    """What a user might run `make run` with: this environment, a run directory and free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}
    return {**env, "CLOUDREC_RUN_DIR": str(run_dir), **{name: str(free_port()) for name in PORTS}, **extra}


@contextlib.contextmanager
def _listening(port: int) -> Iterator[None]:
    """Someone else's server on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


@pytest.mark.parametrize(("name", "what"), [
    ("CLOUDREC_API_PORT", "the API"),
    ("CLOUDREC_AWS_PORT", "the AWS emulation"),
    ("CLOUDREC_JANUS_HTTP_PORT", "Janus's HTTP API"),
    ("CLOUDREC_JANUS_WS_PORT", "Janus's WebSocket API"),
    ("CLOUDREC_VOD_PORT", "the VOD stand-in"),
])
def test_a_taken_port_is_named_with_its_variable_before_anything_starts(tmp_path: Path, name: str,
                                                                        what: str) -> None:
    stack = Stack(stack_env(_user_env(tmp_path)))
    port = int(stack.env[name])
    environ_before = dict(os.environ)
    try:
        with _listening(port), pytest.raises(PortTakenError) as err:
            start(stack)
    finally:
        stack.stop()  # whatever it did start, were the check to let it through
    assert str(err.value) == f"port {port} is taken ({what}, {name}): set {name} to a free port"
    assert stack.procs == [] and stack.pump is None and stack.vod is None
    assert not (tmp_path / "logs").exists() and processes_of(tmp_path) == []
    assert dict(os.environ) == environ_before  # the stack had not yet taken on its settings


def test_the_ports_checked_are_those_of_the_servers_the_stack_starts(tmp_path: Path) -> None:
    def checked(**extra: str) -> set[str]:
        return {listener.var.name for listener in listeners(stack_env(_user_env(tmp_path, **extra)))}

    assert checked() == set(PORTS)
    # a Janus of one's own: no Janus started; a VOD of one's own: no stand-in
    assert checked(CLOUDREC_JANUS_URL="http://127.0.0.1:9/janus") == set(PORTS) - {"CLOUDREC_JANUS_HTTP_PORT",
                                                                                    "CLOUDREC_JANUS_WS_PORT"}
    assert checked(CLOUDREC_VOD_ENDPOINT="https://vod.example.com", CLOUDREC_VOD_PORT="") == set(PORTS) - {
        "CLOUDREC_VOD_PORT"}


def test_one_port_for_two_servers_is_refused(tmp_path: Path) -> None:
    port = free_port()
    stack = Stack(stack_env(_user_env(tmp_path, CLOUDREC_API_PORT=str(port), CLOUDREC_AWS_PORT=str(port))))
    with pytest.raises(PortTakenError) as err:
        start(stack)
    assert str(err.value) == (f"port {port} is set for both the AWS emulation (CLOUDREC_AWS_PORT) and the API "
                              "(CLOUDREC_API_PORT): set one of them to another port")
    assert stack.procs == []


def test_make_run_with_a_taken_port_says_which_variable_moves_it(tmp_path: Path) -> None:
    env = _user_env(tmp_path)
    port = int(env["CLOUDREC_API_PORT"])
    with _listening(port):
        out = subprocess.run([sys.executable, "-m", "infra.local.stack"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == (f"the local stack could not start: port {port} is taken (the API, "
                                  "CLOUDREC_API_PORT): set CLOUDREC_API_PORT to a free port")
    assert not (tmp_path / "logs").exists() and processes_of(tmp_path) == []
