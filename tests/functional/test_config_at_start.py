"""A bad CLOUDREC_* value stops each part of cloudrec as it starts — the API and functions
(app.py as Lambda imports it, and the local API server), a recorder (its keeper and itself)
and the local stack — with the variable's name and what was expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder_container.settings import RecorderSettings, SettingsError
from tests.support.stack import free_port, processes_of

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`argv` from the repository with `env` on top of this environment without its CLOUDREC_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}
    return subprocess.run(argv, cwd=ROOT, env={**base, "AWS_DEFAULT_REGION": "us-east-1", **env},
                          capture_output=True, text=True, timeout=timeout)


def test_the_functions_do_not_load_with_a_bad_value() -> None:
    """Lambda imports app.py; the import fails, and its error is the last line of the log."""
    out = _run([sys.executable, "-c", "import app"], {"CLOUDREC_LAUNCH_GRACE_S": "soon"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "chalicelib.config.ConfigError: CLOUDREC_LAUNCH_GRACE_S: expected a number of seconds greater than 0, "
        "got 'soon'")


def test_the_local_api_server_says_which_value_is_bad() -> None:
    out = _run([sys.executable, "infra/local/api_server.py", "--port", str(free_port())],
               {"CLOUDREC_AUTH_FAILURE_LIMIT": "many"})
    assert out.returncode == 2
    assert out.stderr.strip() == ("the API could not start: CLOUDREC_AUTH_FAILURE_LIMIT: "
                                  "expected a whole number (0 or more), got 'many'")


@pytest.mark.parametrize("entry", ["recorder_container.keeper", "recorder_container"], ids=["keeper", "recorder"])
def test_a_recorder_with_a_bad_value_exits_saying_which(entry: str) -> None:
    out = _run([sys.executable, "-m", entry], {"CLOUDREC_TASK_ID": "T", "CLOUDREC_DRAIN_S": "-5"})
    assert out.returncode == 2
    name = "keeper" if entry.endswith("keeper") else "recorder"
    assert out.stderr.strip() == f"{name}: CLOUDREC_DRAIN_S: expected a number of seconds greater than 0, got '-5'"


@pytest.mark.parametrize(("env", "message"), [
    ({"CLOUDREC_SEGMENT_S": "12s"}, "CLOUDREC_SEGMENT_S: expected a number of seconds greater than 0, got '12s'"),
    ({"CLOUDREC_AWS_ENDPOINT": "localhost:5000"},
     "CLOUDREC_AWS_ENDPOINT: expected an http:// or https:// URL, got 'localhost:5000'"),
    ({"CLOUDREC_SHARD": "-1"}, "CLOUDREC_SHARD: expected a whole number (0 or more), got '-1'"),
])
def test_recorder_settings_refuse_a_bad_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        RecorderSettings.from_env({"CLOUDREC_TASK_ID": "T", **env})
    assert str(err.value) == message


def test_recorder_settings_read_the_recorder_user() -> None:
    assert RecorderSettings.from_env({"CLOUDREC_TASK_ID": "T"}).recorder_user is None
    settings = RecorderSettings.from_env({"CLOUDREC_TASK_ID": "T", "CLOUDREC_RECORDER_USER": "65534",
                                          "CLOUDREC_MIX_PRESET": "fast"})
    assert (settings.recorder_user, settings.mix_preset) == (65534, "fast")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("CLOUDREC_API_PORT", "abc", "a port number (1-65535)"),
    # read by no server the stack starts itself, only by the recorders its API launches: checked all the same
    ("CLOUDREC_SEGMENT_S", "12s", "a number of seconds greater than 0"),
])
def test_the_local_stack_starts_nothing_with_a_bad_value(tmp_path: Path, name: str, value: str,
                                                         expected: str) -> None:
    ports = {var: str(free_port()) for var in ("CLOUDREC_API_PORT", "CLOUDREC_AWS_PORT", "CLOUDREC_VOD_PORT",
                                               "CLOUDREC_JANUS_HTTP_PORT", "CLOUDREC_JANUS_WS_PORT")}
    out = _run([sys.executable, "-m", "infra.local.stack"],
               {**ports, "CLOUDREC_RUN_DIR": str(tmp_path), name: value})
    assert out.returncode == 1
    assert out.stderr.strip() == f"the local stack could not start: {name}: expected {expected}, got {value!r}"
    assert not (tmp_path / "logs").exists() and processes_of(tmp_path) == []
