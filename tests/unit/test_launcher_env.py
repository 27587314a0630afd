"""A local recorder parses media from anyone in the room: it gets the settings and AWS access
it needs from its launcher's environment, and none of the API's secrets."""

from __future__ import annotations

import time
from pathlib import Path

from chalicelib.launcher import LocalLauncher


def test_a_local_recorder_gets_its_settings_and_not_the_apis_secrets(tmp_path: Path) -> None:
    dump = tmp_path / "env.txt"
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\nenv > {dump}\n")
    fake_python.chmod(0o755)
    parent = {"PATH": "/usr/bin:/bin", "HOME": "/root", "CLOUDREC_TASKS_TABLE": "tasks",
              "AWS_ACCESS_KEY_ID": "local", "CLOUDREC_SECRET_KEY": "the-api-secret",
              "CLOUDREC_USERSIG_KEY": "the-usersig-key", "DATABASE_PASSWORD": "hunter2"}
    exited: list[int] = []
    launcher = LocalLauncher(tmp_path / "logs", env=parent, python=str(fake_python), cwd=tmp_path,
                             on_exit=lambda task, handle, code: exited.append(code))
    launcher.launch("T+1.", 2)
    deadline = time.monotonic() + 10
    while not exited and time.monotonic() < deadline:
        time.sleep(0.02)
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert env["CLOUDREC_TASK_ID"] == "T+1." and env["CLOUDREC_HA_INDEX"] == "2"
    assert env["CLOUDREC_TASKS_TABLE"] == "tasks" and env["AWS_ACCESS_KEY_ID"] == "local"
    assert "the-api-secret" not in env.values() and "the-usersig-key" not in env.values()
    assert "DATABASE_PASSWORD" not in env
    assert exited == [0]
