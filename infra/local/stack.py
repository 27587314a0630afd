"""`make run`: all of cloudrec on one machine, every server on 127.0.0.1.

Starts the AWS emulation (moto server: DynamoDB, S3, SQS) with cloudrec's tables, queues
and bucket, seeds the development app, starts Janus (unless CLOUDREC_JANUS_URL names one),
serves app.py with `chalice local` (which launches recorders as child processes), and
runs the event pump that feeds S3/SQS events and schedules to the app's handlers.
Ctrl-C (or SIGTERM) stops all of it. Before it starts anything, it checks every CLOUDREC_*
value (chalicelib/config.py) and that every port it will listen on is free.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import importlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3

from chalicelib import config, recorder_exits
from chalicelib.apps import AppRegistry, dev_app_from_env
from chalicelib.config import Settings
from chalicelib.launcher import die_with_parent
from chalicelib.naming import file_safe
from chalicelib.schema import create_resources
from infra.local import janus
from infra.local.pump import EventPump
from infra.local.vod_server import VodServer

ROOT = Path(__file__).resolve().parents[2]

VOD_BUCKET = "cloudrec-vod"  # where the VOD stand-in keeps committed media

SERVER_STOP_S = 5  # then SIGKILL: Janus now and then hangs after "Freeing crypto resources..."
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
EMULATOR_ACCOUNT = "123456789012"  # moto's
RECORDER_ROLE = "cloudrec-recorder-scoped"


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own local URL)
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up at {url} within {timeout:.0f} s")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_recorders(timeout: float = 20.0) -> None:
    """Recorders are children of the API (or of the pump): stop them gracefully first, so
    they end their tasks, then the servers they talk to. One still draining uploads after
    `timeout` is killed (its task is then the reaper's, at the next start)."""
    recorders = []
    for pid in _descendants(os.getpid()):
        try:
            if b"recorder_container" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                recorders.append(pid)
        except OSError:
            continue
    deadline = time.monotonic() + timeout
    while recorders and time.monotonic() < deadline:
        recorders = [pid for pid in recorders if running(pid)]
        time.sleep(0.1)
    for pid in recorders:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class Stack:
    """The processes of the local stack, started in order and stopped in reverse.

    Each server runs in a session of its own, so a signal to `make run`'s process group (Ctrl-C,
    SIGTERM) reaches only this process, which stops the rest in order: the event pump, the
    recorders (while the AWS emulation they finish their tasks in is still up), the API, the
    VOD stand-in, Janus, and the AWS emulation last."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.run_dir = config.CLOUDREC_RUN_DIR.get(env)
        self.log_dir = self.run_dir / "logs"
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.pump: EventPump | None = None
        self.vod: VodServer | None = None
        self.workers: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}  # (slot, process) by worker id
        self.sqs: Any = None
        self._started_workers = 0

    def start_worker(self, slot: int) -> None:
        """A warm worker (recorder_container/worker.py) in `slot`, sharing the machine's CPUs with the others."""
        self._started_workers += 1
        worker_id = f"local-{slot}.{self._started_workers}"
        env = dict(self.env)
        count = config.CLOUDREC_WARM_WORKERS.get(env)
        _set_default(env, config.CLOUDREC_WORKER_CAPACITY, f"{len(os.sched_getaffinity(0)) / max(1, count):g}")
        env[config.CLOUDREC_WORKER_ID.name] = worker_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"worker-{slot}.log", "ab") as log:
            self.workers[worker_id] = slot, subprocess.Popen(
                [sys.executable, "-m", "recorder_container.worker"], env=env, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent)

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        """Until every worker polls for recordings (its recorders' parent has imported what they need)."""
        deadline = time.monotonic() + timeout
        for worker_id, (_, proc) in self.workers.items():
            ready = self.run_dir / "workers" / f"{file_safe(worker_id)}.ready"
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {worker_id} did not come up (logs/worker-*.log)")
                time.sleep(0.1)

    def replace_dead_workers(self) -> None:
        """As an ECS service does: a worker that died is reported (its recordings go on elsewhere)
        and replaced."""
        for worker_id, (slot, proc) in list(self.workers.items()):
            if proc.poll() is None:
                continue
            del self.workers[worker_id]
            print(f"worker {worker_id} exited with code {proc.returncode}; replacing it", file=sys.stderr, flush=True)
            recorder_exits.send_local(self.sqs, recorder_exits.local_event(
                "", worker_id, proc.returncode, Settings.from_env(self.env).aws_region))
            self.start_worker(slot)

    def spawn(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        # a server dies when the stack dies without stopping it; SIGKILL, not SIGTERM: Janus now and
        # then hangs in its own shutdown, and nobody would be left to kill it. Only the stack's main
        # thread starts servers, so the parent outlives each spawn.
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent, **kwargs)
        self.procs.append((name, proc, log))
        return proc

    def stop(self) -> None:
        if self.pump is not None:
            self.pump.stop()
        _stop_recorders()
        for _, proc in self.workers.values():
            stop_process(proc, SERVER_STOP_S)
        for name, proc, log in reversed(self.procs):
            if name == "aws" and self.vod is not None:
                self.vod.stop()
            stop_process(proc, SERVER_STOP_S)
            log.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _set_default(env: dict[str, str], var: config.Var[Any], value: str | None = None) -> None:
    """`value` (the declared default if None) where `env` leaves `var` unset or empty."""
    if not env.get(var.name):
        env[var.name] = var.default if value is None else value


def stack_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of the stack and everything it starts: `base` with the local defaults.
    ConfigError, before anything starts, for a value in `base` that is not what it must be."""
    config.check(base)  # what the user set, before anything is derived from it
    env = dict(base)
    for key, value in EMULATOR_CREDENTIALS.items():
        env.setdefault(key, value)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for var in (config.CLOUDREC_API_PORT, config.CLOUDREC_AWS_PORT, config.CLOUDREC_RUN_DIR, config.CLOUDREC_LAUNCHER):
        _set_default(env, var)
    _set_default(env, config.CLOUDREC_ALLOW_PRIVATE_URLS, "1")  # images for layouts may be served locally
    # the stack's own key seals the storage keys in the task store (moto keeps nothing past a stop)
    _set_default(env, config.CLOUDREC_SEAL_KEY, base64.b64encode(os.urandom(32)).decode())
    env[config.CLOUDREC_AWS_ENDPOINT.name] = f"http://127.0.0.1:{env[config.CLOUDREC_AWS_PORT.name]}"
    # recorders run with credentials for their own task only, from this role (recorder_access.py)
    _set_default(env, config.CLOUDREC_RECORDER_ROLE_ARN, f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/{RECORDER_ROLE}")
    _set_default(env, config.CLOUDREC_STORAGE_ENDPOINT, env[config.CLOUDREC_AWS_ENDPOINT.name])
    if not env.get(config.CLOUDREC_VOD_ENDPOINT.name):  # VOD tasks commit to the local stand-in
        _set_default(env, config.CLOUDREC_VOD_PORT)
        env[config.CLOUDREC_VOD_ENDPOINT.name] = f"http://127.0.0.1:{env[config.CLOUDREC_VOD_PORT.name]}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)  # everything here is on 127.0.0.1
    return env


class PortTakenError(RuntimeError):
    """A port the stack would listen on is not free; the message says which variable moves it."""


@dataclass(frozen=True)
class Listener:
    """A TCP port on 127.0.0.1 that a server of the stack listens on, and the variable that sets it."""

    what: str
    var: config.Var[int]
    port: int


def listeners(env: dict[str, str]) -> list[Listener]:
    """Every port the stack will listen on, as `env` (stack_env's) sets them. Janus's admin API is
    off; its RTP ports (UDP, taken as media comes) are not checked."""
    servers = [("the AWS emulation", config.CLOUDREC_AWS_PORT), ("the API", config.CLOUDREC_API_PORT)]
    if not env.get(config.CLOUDREC_JANUS_URL.name):
        servers += [("Janus's HTTP API", config.CLOUDREC_JANUS_HTTP_PORT),
                    ("Janus's WebSocket API", config.CLOUDREC_JANUS_WS_PORT)]
    if env.get(config.CLOUDREC_VOD_PORT.name):
        servers.append(("the VOD stand-in", config.CLOUDREC_VOD_PORT))
    return [Listener(what, var, var.get(env)) for what, var in servers]


def _bind_error(port: int) -> OSError | None:
    """Why a server could not listen on 127.0.0.1:`port` now (None: it could)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the servers do: a port whose last connections linger in TIME_WAIT is free to them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as exc:
            return exc
    return None


def check_ports(env: dict[str, str]) -> None:
    """Raise PortTakenError naming each port the stack needs that is taken (or set twice) and the
    variable to change, before any server starts."""
    problems = []
    by_port: dict[int, Listener] = {}
    for listener in listeners(env):
        name = listener.var.name
        first = by_port.setdefault(listener.port, listener)
        if first is not listener:
            problems.append(f"port {listener.port} is set for both {first.what} ({first.var.name}) and "
                            f"{listener.what} ({name}): set one of them to another port")
            continue
        error = _bind_error(listener.port)
        if error is None:
            continue
        taken = "is taken" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror})"
        problems.append(f"port {listener.port} {taken} ({listener.what}, {name}): set {name} to a free port")
    if problems:
        raise PortTakenError("; ".join(problems))


CONSOLE_KEY_FILE = "console-key"


def console_key(env: dict[str, str], run_dir: Path) -> str:
    """The operators' key to the console: CLOUDREC_CONSOLE_KEY if set, else the one kept in the run
    directory (made at the first start, readable by its owner only), so a restart keeps the tab
    logged in."""
    given = config.CLOUDREC_CONSOLE_KEY.get(env)
    if given:
        return given
    path = run_dir / CONSOLE_KEY_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def start(stack: Stack) -> None:
    """Start every server of the stack, in order; first, PortTakenError if a port it needs is not free."""
    env = stack.env
    check_ports(env)
    env[config.CLOUDREC_CONSOLE_KEY.name] = console_key(env, stack.run_dir)
    aws_port, api_port = env[config.CLOUDREC_AWS_PORT.name], env[config.CLOUDREC_API_PORT.name]
    moto = stack.spawn("aws", [sys.executable, "-m", "infra.local.aws_emulation", "-H", "127.0.0.1", "-p", aws_port],
                       cwd=ROOT)
    _wait_http(f"http://127.0.0.1:{aws_port}/moto-api/", moto, "the AWS emulation")

    os.environ.update(env)  # this process runs the pump with the same settings as the API
    settings = Settings.from_env(env)
    session = boto3.session.Session(region_name=settings.aws_region)
    clients = {name: session.client(name, endpoint_url=settings.aws_endpoint) for name in ("dynamodb", "sqs", "s3")}
    create_resources(settings, clients["dynamodb"], clients["sqs"], clients["s3"])
    session.client("iam", endpoint_url=settings.aws_endpoint).create_role(
        RoleName=RECORDER_ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": EMULATOR_ACCOUNT}}]}))
    app, secret_id, secret_key = dev_app_from_env(env)
    AppRegistry(clients["dynamodb"], settings.apps_table).put_app(app, secret_id, secret_key)

    if not env.get(config.CLOUDREC_JANUS_URL.name):
        cfg = janus.JanusConfig.from_env(env)
        conf_dir = stack.run_dir / "janus"
        janus.render(cfg, conf_dir)
        proc = stack.spawn("janus", janus.command(cfg, conf_dir))
        _wait_http(f"http://127.0.0.1:{cfg.http_port}/janus/info", proc, "Janus")

    api = stack.spawn("api", [sys.executable, str(ROOT / "infra/local/api_server.py"), "--host", "127.0.0.1",
                              "--port", api_port], cwd=ROOT)
    _wait_http(f"http://127.0.0.1:{api_port}/", api, "the API")

    if env.get(config.CLOUDREC_VOD_PORT.name):
        if VOD_BUCKET not in {b["Name"] for b in clients["s3"].list_buckets().get("Buckets", [])}:
            clients["s3"].create_bucket(Bucket=VOD_BUCKET)
        stack.vod = VodServer(config.CLOUDREC_VOD_PORT.get(env), clients["s3"], VOD_BUCKET, {secret_id: secret_key})
        stack.vod.start()

    stack.pump = EventPump(importlib.import_module("app"), clients["sqs"], settings.aws_region, settings.outputs_dlq)
    stack.pump.start()
    for slot in range(config.CLOUDREC_WARM_WORKERS.get(env)):
        stack.start_worker(slot)
    stack.sqs = clients["sqs"]
    stack.wait_for_workers()


def _key_from_file(env: dict[str, str]) -> bool:
    path = config.CLOUDREC_RUN_DIR.get(env) / CONSOLE_KEY_FILE
    return path.is_file() and path.read_text().strip() == config.CLOUDREC_CONSOLE_KEY.get(env)


def banner(env: dict[str, str]) -> str:
    app, secret_id, secret_key = dev_app_from_env(env)
    janus_url = app.room.janus_url
    own_janus = env.get(config.CLOUDREC_JANUS_URL.name)
    api_port, run_dir = env[config.CLOUDREC_API_PORT.name], env[config.CLOUDREC_RUN_DIR.name]
    return "\n".join([
        "cloudrec local stack is up (Ctrl-C stops everything)",
        f"  API (TRTC API 3.0)   http://127.0.0.1:{api_port}/   endpoint for the SDK: "
        f"127.0.0.1:{api_port} (protocol http)",
        f"  AWS emulation        {env[config.CLOUDREC_AWS_ENDPOINT.name]}   (moto: DynamoDB, S3, SQS)",
        f"  Janus                {janus_url}" + ("" if own_janus else
                                                 f"   WebSocket ws://127.0.0.1:{config.CLOUDREC_JANUS_WS_PORT.get(env)}"),
        f"  VOD (API 3.0)        {env[config.CLOUDREC_VOD_ENDPOINT.name]}"
        + ("   local stand-in, media in bucket " + VOD_BUCKET if env.get(config.CLOUDREC_VOD_PORT.name) else ""),
        f"  console              http://127.0.0.1:{api_port}/console   key: "
        + (f"cat {run_dir}/{CONSOLE_KEY_FILE}" if _key_from_file(env) else "CLOUDREC_CONSOLE_KEY"),
        f"  logs                 {run_dir}/logs/ (recorders in {run_dir}/recorders/)",
        "development app:",
        f"  SdkAppId {app.sdkappid}   SecretId {secret_id}   SecretKey {secret_key}",
        f"  UserSig key {app.usersig_key}   (python -m chalicelib.admin usersig --user-id ROBOT)",
        f"  limits {app.qps} requests/s per action, {app.max_concurrent} concurrent tasks",
    ])


def main() -> int:
    try:
        stack = Stack(stack_env(dict(os.environ)))
    except config.ConfigError as exc:
        print(f"the local stack could not start: {exc}", file=sys.stderr)
        return 1
    for name in config.unknown(stack.env):
        print(f"warning: {name} is not a cloudrec variable (README: Configuration); it changes nothing",
              file=sys.stderr)
    # A plain flag: the handler runs on the main thread between bytecodes, and setting a
    # threading.Event there deadlocks when it interrupts that thread inside Event.wait (the
    # Event's lock is not reentrant) — the stack then ignored Ctrl-C and SIGTERM for good.
    signals: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: signals.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: signals.append(signum))
    try:
        start(stack)
        print(banner(stack.env), flush=True)
        while not signals:
            time.sleep(0.2)
            stack.replace_dead_workers()
            exited = [(name, proc) for name, proc, _ in stack.procs if proc.poll() is not None]
            for name, proc in exited:
                print(f"{name} exited with code {proc.returncode}; stopping the stack", file=sys.stderr)
                signals.append(0)
    except Exception as exc:
        print(f"the local stack could not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print("stopping cloudrec local stack", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
