"""Starting recorders: one per task, as an ECS (Fargate) task in AWS or a local process.

Both launchers pass the task id and the HA index; everything else the recorder reads
from the task store. A launch returns a handle that `stop` accepts.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from chalicelib import config
from chalicelib.config import PROJECT_ROOT, Settings
from chalicelib.errors import ServiceError
from chalicelib.naming import file_safe

log = logging.getLogger(__name__)

# what a recorder is told about its task (recorder_container/settings.py reads them)
TASK_ID_ENV, HA_INDEX_ENV = config.CLOUDREC_TASK_ID.name, config.CLOUDREC_HA_INDEX.name


class Launcher(Protocol):
    def launch(self, task_id: str, ha_index: int) -> str: ...

    def stop(self, handle: str) -> None: ...


# a recorder starts as its keeper, which runs it with its own task's credentials only
RECORDER_COMMAND = ("-m", "recorder_container.keeper")
PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> None:
    """In a child process, before exec: SIGKILL it when the process that started it dies (a
    session of its own no longer shares its parent's fate). The parent must outlive the spawn
    itself: start children from one long-lived thread."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# what of the launching process's environment a recorder gets: the settings and the AWS access
# it needs, the few variables a Python process runs on, and none of the API's secrets
_RECORDER_ENV_PREFIXES = ("CLOUDREC_", "AWS_", "LC_", "PYTHON")
_RECORDER_ENV_NAMES = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR"}
_API_SECRETS = {var.name for var in (config.CLOUDREC_SECRET_ID, config.CLOUDREC_SECRET_KEY, config.CLOUDREC_USERSIG_KEY,
                                     config.CLOUDREC_CALLBACK_KEY)}


def recorder_env(parent: Mapping[str, str]) -> dict[str, str]:
    """A recorder's environment, from its launcher's: it parses media from anyone in the room,
    so it gets what it needs and nothing more."""
    return {k: v for k, v in parent.items()
            if (k in _RECORDER_ENV_NAMES or k.startswith(_RECORDER_ENV_PREFIXES)) and k not in _API_SECRETS}


def recorder_file(task_id: str, ha_index: int, suffix: str) -> str:
    """The name of a recorder's file in the run dir's `recorders/` (its log, a worker's pid file)."""
    return f"recorder-{file_safe(task_id)}-ha{ha_index}{suffix}"


ExitListener = Callable[[str, str, int], None]  # (task id, handle, return code) of a recorder that ended


class LocalLauncher:
    """Runs a recorder (its keeper, `python -m recorder_container.keeper`) as a child process of
    the API process. `on_exit` hears of every recorder that ends, as ECS's task-state events
    tell of Fargate tasks."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None,
                 python: str = sys.executable, cwd: Path = PROJECT_ROOT, on_exit: ExitListener | None = None,
                 cold_start_s: float = 0.0) -> None:
        self._log_dir = log_dir
        self._cold_start_s = cold_start_s
        self._env = env
        self._python = python
        self._cwd = cwd
        self._on_exit = on_exit

    def launch(self, task_id: str, ha_index: int) -> str:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / recorder_file(task_id, ha_index, ".log")
        env = recorder_env(os.environ if self._env is None else self._env)
        env.update({TASK_ID_ENV: task_id, HA_INDEX_ENV: str(ha_index)})
        try:
            with open(log_path, "ab") as log:
                argv = [self._python, *RECORDER_COMMAND]
                if self._cold_start_s:  # Fargate's minute before a task runs, in miniature
                    argv = ["/bin/sh", "-c", 'sleep "$0" && exec "$@"', f"{self._cold_start_s:g}", *argv]
                proc = subprocess.Popen(  # a session of its own: it outlives the API, as a Fargate task would
                    argv,
                    cwd=self._cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                )
        except OSError as exc:
            raise ServiceError("The recorder could not be started.") from exc
        handle = f"pid:{proc.pid}"
        # Reap the child when it exits so no zombie stays behind in a long-lived API process.
        threading.Thread(target=self._wait, args=(proc, task_id, handle), name=f"reap-{proc.pid}", daemon=True).start()
        return handle

    def _wait(self, proc: subprocess.Popen[bytes], task_id: str, handle: str) -> None:
        returncode = proc.wait()
        if self._on_exit is not None:
            try:
                self._on_exit(task_id, handle, returncode)
            except Exception:  # the lease still runs out, and the sweep takes the task over then
                log.exception("a recorder's exit could not be reported", extra={"task_id": task_id})

    def stop(self, handle: str) -> None:
        if not handle.startswith("pid:"):
            return
        pid = int(handle[4:])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return  # gone already
        if b"recorder_container" in cmdline:  # never signal a process that reused the pid
            os.kill(pid, signal.SIGTERM)


class EcsLauncher:
    """Runs the recorder image as a Fargate task (RunTask) with the task id in its environment."""

    def __init__(self, ecs: Any, settings: Settings) -> None:
        self._ecs = ecs
        self._s = settings

    def launch(self, task_id: str, ha_index: int) -> str:
        s = self._s
        try:
            out = self._ecs.run_task(
                cluster=s.ecs_cluster,
                taskDefinition=s.ecs_task_definition,
                launchType="FARGATE",
                count=1,
                startedBy="cloudrec",
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": list(s.ecs_subnets),
                    "securityGroups": list(s.ecs_security_groups),
                    "assignPublicIp": "ENABLED" if s.ecs_public_ip else "DISABLED",
                }},
                overrides={"containerOverrides": [{
                    "name": s.ecs_container,
                    "environment": [
                        {"name": TASK_ID_ENV, "value": task_id},
                        {"name": HA_INDEX_ENV, "value": str(ha_index)},
                    ],
                }]},
            )
        except Exception as exc:  # botocore errors of any kind: the operator needs ECS's words
            log.warning("RunTask failed: %s", exc, extra={"task_id": task_id})
            raise ServiceError("The recorder could not be started.") from exc
        tasks = out.get("tasks") or []
        if not tasks:
            reasons = "; ".join(f.get("reason", "?") for f in out.get("failures", []))
            raise ServiceError(f"The recorder could not be started ({reasons or 'no capacity'}).")
        return str(tasks[0]["taskArn"])

    def stop(self, handle: str) -> None:
        if handle.startswith("arn:"):
            self._ecs.stop_task(cluster=self._s.ecs_cluster, task=handle, reason="cloudrec relaunch")


def get_launcher(settings: Settings, ecs_client: Any = None, on_exit: ExitListener | None = None) -> Launcher:
    """The launcher the settings name: "local" (default) or "ecs" (whose exits EventBridge reports)."""
    if settings.launcher == "ecs":
        return EcsLauncher(ecs_client, settings)
    if settings.launcher == "local":
        return LocalLauncher(settings.run_dir / "recorders", on_exit=on_exit,
                             cold_start_s=config.CLOUDREC_COLD_START_S.get(os.environ))
    raise ValueError(f"unknown CLOUDREC_LAUNCHER {settings.launcher!r} (local or ecs)")
