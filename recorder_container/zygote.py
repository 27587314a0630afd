"""The warm parent of a worker's recorders: `python -m recorder_container.zygote`, started by the
worker (recorder_container/worker.py) with an environment that holds no AWS credentials and no
stack secrets. It imports what a recorder runs on once, then forks one recorder per request:
a recorder starts in milliseconds, not after the second of CPU its imports cost (twenty starts
at once queued for ten seconds on two cores).

Requests on stdin, one JSON line each: `{"env": {...}, "uid": 65534 | null, "log": path | null}`
(the recorder's whole environment; the user it runs as; where its output goes, else the
zygote's stderr). Replies on stdout, one JSON line each: first `{"ready": true}` once it has
imported what a recorder needs, then `{"pid": n}` for each request, in
order (`{"pid": null, "error": "..."}` if it could not fork), and `{"exit": pid, "code": c}`
when a recorder ended (c negative: killed by that signal). The zygote ends when its stdin
closes; it and its recorders die with the worker (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from typing import Any

import botocore.session

from chalicelib.launcher import die_with_parent
from recorder_container import composition
from recorder_container.__main__ import record

REAP_EVERY_S = 0.1
SERVICES = ("dynamodb", "sqs", "s3", "sts", "kms")  # what a recorder's clients talk to


def share_botocore_data() -> None:
    """Parse botocore's JSON (endpoints, partitions, the services' models) once, here, for every
    recorder forked from now on: each boto3 session of a recorder reads its data through this
    one loader instead of parsing it again. A recorder spent 70 % of the CPU it takes to get
    into its room doing that; twenty of them at once spent seconds. The throwaway session
    here reads no configuration and holds no credentials."""
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    for service in SERVICES:
        session.create_client(service, region_name="us-east-1", aws_access_key_id="warm-up",
                              aws_secret_access_key="warm-up")  # noqa: S106 (never used: nothing is called)
    original = botocore.session.create_loader

    def shared(search_path_string: str | None = None) -> Any:
        return original(search_path_string) if search_path_string else loader

    botocore.session.create_loader = shared


def _child(request: dict[str, Any]) -> int:
    """In the forked child: become the task's recorder and run it."""
    die_with_parent()
    os.setsid()  # a terminal's Ctrl-C is the worker's to handle, as for a dedicated recorder
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    if request.get("log"):
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
    else:
        os.dup2(2, 1)  # never into the zygote's reply pipe
    uid = request.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.environ.clear()
    os.environ.update(request["env"])
    return composition.run_process("recorder", record)


def _start(request: dict[str, Any]) -> dict[str, Any]:
    try:
        pid = os.fork()
    except OSError as exc:
        return {"pid": None, "error": str(exc)}
    if pid == 0:
        code = 1
        try:
            code = _child(request)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    return {"pid": pid}


def _reaped() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return out
        if pid == 0:
            return out
        out.append({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    die_with_parent()
    share_botocore_data()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker signals each recorder itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    pending = b""
    _reply({"ready": True})
    while True:
        ready, _, _ = select.select([stdin], [], [], REAP_EVERY_S)
        if ready:
            chunk = os.read(stdin.fileno(), 65536)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    _reply(_start(json.loads(line)))
        for ended in _reaped():
            _reply(ended)


if __name__ == "__main__":
    sys.exit(main())
