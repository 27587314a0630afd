"""The local stack as tests and benches use it: `infra/local/stack.py` on free ports, with a
callback receiver, fast heartbeats and a frequent reaper."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.trtc.v20190722 import trtc_client

from chalicelib.naming import file_safe
from infra.local.stack import running, stop_process
from tests.support.callback_receiver import CallbackReceiver

ROOT = Path(__file__).resolve().parents[2]  # the repository
SDKAPPID = 1400000001
SECRET_ID, SECRET_KEY = "AKIDLOCALDEV", "local-dev-secret"
USERSIG_KEY = "local-dev-usersig-key"
CALLBACK_KEY = "e2eCallbackKey42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class StackCallbacks(CallbackReceiver):
    """The callback receiver of the session's stack, with lookups by task and event type."""

    def of(self, task_id: str, event_type: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["EventInfo"]["TaskId"] == task_id
                and (event_type is None or e["EventType"] == event_type)]

    def wait(self, task_id: str, event_type: int, timeout: float = 30) -> dict[str, Any]:
        found = wait_for(lambda: self.of(task_id, event_type), timeout, f"event {event_type} of {task_id}")
        return found[0]  # type: ignore[no-any-return]


@dataclass
class LocalStack:
    env: dict[str, str]
    run_dir: Path
    proc: subprocess.Popen[bytes]
    callbacks: StackCallbacks

    @property
    def api_endpoint(self) -> str:
        return f"127.0.0.1:{self.env['CLOUDREC_API_PORT']}"

    @property
    def janus_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CLOUDREC_JANUS_HTTP_PORT']}/janus"

    def client(self, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY, method: str = "POST",
               endpoint: str | None = None) -> trtc_client.TrtcClient:
        hp = HttpProfile(protocol="http", endpoint=endpoint or self.api_endpoint, reqMethod=method, reqTimeout=10)
        return trtc_client.TrtcClient(credential.Credential(secret_id, secret_key), "ap-guangzhou",
                                      ClientProfile(httpProfile=hp))

    def boto(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.env["CLOUDREC_AWS_ENDPOINT"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def task_item(self, task_id: str) -> dict[str, Any] | None:
        item = self.boto("dynamodb").get_item(TableName="cloudrec-tasks", Key={"task_id": {"S": task_id}},
                                              ConsistentRead=True).get("Item")
        return item  # type: ignore[no-any-return]

    def admin(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "chalicelib.admin", *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout

    def recorder_logs(self) -> list[Path]:
        return sorted((self.run_dir / "recorders").glob("*.log"))


def stack_env(run_dir: Path, callback_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}
    env.update(
        CLOUDREC_RUN_DIR=str(run_dir),
        CLOUDREC_API_PORT=str(free_port()),
        CLOUDREC_AWS_PORT=str(free_port()),
        CLOUDREC_JANUS_HTTP_PORT=str(free_port()),
        CLOUDREC_JANUS_WS_PORT=str(free_port()),
        CLOUDREC_JANUS_RTP_PORTS="30000-30099",
        CLOUDREC_VOD_PORT=str(free_port()),
        CLOUDREC_CALLBACK_URL=callback_url,
        CLOUDREC_CALLBACK_KEY=CALLBACK_KEY,
        CLOUDREC_HEARTBEAT_S="1",
        CLOUDREC_LEASE_S="4",
        CLOUDREC_LAUNCH_GRACE_S="15",
        CLOUDREC_LOCAL_SCHEDULE_S="2",
        CLOUDREC_AUTH_FAILURE_LIMIT="0",  # every request comes from 127.0.0.1, the fuzz suite's thousands too
    )
    env["CLOUDREC_AWS_ENDPOINT"] = f"http://127.0.0.1:{env['CLOUDREC_AWS_PORT']}"
    return env


@contextlib.contextmanager
def running_stack(run_dir: Path, **extra_env: str) -> Iterator[LocalStack]:
    """`infra/local/stack.py` on free ports with a callback receiver, until the block ends."""
    receiver = StackCallbacks(CALLBACK_KEY)
    env = {**stack_env(run_dir, receiver.start()), **extra_env}
    out = open(run_dir / "stack.out", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "infra/local/stack.py")], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: b"is up" in (run_dir / "stack.out").read_bytes() or proc.poll() is not None,
                 120, "the local stack")
        if proc.poll() is not None:
            raise RuntimeError("the local stack failed:\n" + (run_dir / "stack.out").read_text())
        yield LocalStack(env, run_dir, proc, receiver)
    finally:
        stop_process(proc, 90)
        for pid in processes_of(run_dir):  # e.g. a recorder launched by an API process a test started
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        out.close()
        receiver.server.shutdown()


def recorder_pid(task_id: str, run_dir: Path | None = None) -> int | None:
    """The pid of the task's (newest) recorder: a warm worker's, as its pid file says, or a
    dedicated one's, found by its environment."""
    if run_dir is not None:
        files = sorted((run_dir / "recorders").glob(f"recorder-{file_safe(task_id)}-ha*.pid"),
                       key=lambda p: int(p.stem.rpartition("-ha")[2]))
        for path in reversed(files):
            with contextlib.suppress(OSError, ValueError):
                pid = int(path.read_text())
                if running(pid):
                    return pid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"recorder_container" in (proc / "cmdline").read_bytes() and \
                    f"CLOUDREC_TASK_ID={task_id}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    return None


def processes_of(run_dir: Path) -> list[int]:
    """The processes that still run with this stack's run directory in their environment."""
    needle = f"CLOUDREC_RUN_DIR={run_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0") and running(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found
