"""The running API driven by the other official clients, tccli and the Node.js SDK
(tencentcloud-sdk-nodejs), at an IP endpoint and at host names whose first label is and is not
`trtc`. Each signs differently from the Python SDK (chalicelib/signing.py says how).

The host names resolve to 127.0.0.1 inside the client processes only
(tests/support/tccli_resolving.py, tests/support/node_sdk/resolve_test_hosts.js).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sdk import create_params
from tests.support.stack import ROOT, SDKAPPID, SECRET_ID, SECRET_KEY, LocalStack

pytestmark = pytest.mark.e2e

NODE_SDK = ROOT / "tests/support/node_sdk"
TCCLI = ROOT / "tests/support/tccli_resolving.py"
HOSTS = ["127.0.0.1", "trtc.cloudrec.test", "recording.cloudrec.test"]
REGION = "ap-guangzhou"

Call = Callable[..., dict[str, Any]]  # call(action, params, secret_key=...) -> the Response object


class ApiError(Exception):
    """An API 3.0 error as the client reported it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def client_env(home: Path) -> dict[str, str]:
    """A client process's environment: no proxies (both clients read them) and a home of its own
    (tccli reads and writes ~/.tccli)."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not k.startswith(("TENCENTCLOUD_",
                                                                                                "TCCLI_"))}
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-home")


@contextlib.contextmanager
def tccli(stack: LocalStack, home: Path, host: str) -> Iterator[Call]:
    """tccli with `--endpoint http://<host>:<port>` and the credentials on the command line."""
    endpoint = f"http://{host}:{stack.env['CLOUDREC_API_PORT']}"

    def call(action: str, params: dict[str, Any], secret_key: str = SECRET_KEY) -> dict[str, Any]:
        args = [sys.executable, str(TCCLI), "trtc", action, "--endpoint", endpoint, "--region", REGION,
                "--secretId", SECRET_ID, "--secretKey", secret_key]
        for name, value in params.items():
            args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
        out = subprocess.run(args, env=client_env(home), cwd=home, capture_output=True, text=True, timeout=60)
        if out.returncode == 0:
            return dict(json.loads(out.stdout))
        error = re.search(r"code:\s*(\S+)\s+message:\s*(.*?)\s+requestId:", out.stderr + out.stdout, re.S)
        assert error, f"tccli failed without an API error:\n{out.stdout}\n{out.stderr}"
        raise ApiError(error[1], error[2])

    yield call


@contextlib.contextmanager
def node_sdk(stack: LocalStack, home: Path, host: str, method: str = "POST") -> Iterator[Call]:
    """One Node.js process (tests/support/node_sdk/call.js) that makes the calls in turn."""
    endpoint = f"{host}:{stack.env['CLOUDREC_API_PORT']}"
    with open(home / f"node-{host}.err", "w+") as err:
        proc = subprocess.Popen(["node", "--require", str(NODE_SDK / "resolve_test_hosts.js"),
                                 str(NODE_SDK / "call.js")], cwd=NODE_SDK, env=client_env(home), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None and proc.stdout is not None

        def call(action: str, params: dict[str, Any], secret_key: str = SECRET_KEY) -> dict[str, Any]:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({"endpoint": endpoint, "secretId": SECRET_ID, "secretKey": secret_key,
                                         "region": REGION, "action": action, "params": params,
                                         "method": method}) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line:
                err.seek(0)
                raise AssertionError(f"the Node.js client ended:\n{err.read()}")
            answer = json.loads(line)
            if "error" in answer:
                raise ApiError(str(answer["error"]["code"]), answer["error"]["message"])
            return dict(answer["response"])

        try:
            yield call
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("client", [tccli, node_sdk], ids=["tccli", "node"])
def test_four_actions_and_a_wrong_key(stack: LocalStack, home: Path, client: Any, host: str) -> None:
    user = f"rec_{client.__name__}_{host.split('.')[0]}"
    with client(stack, home, host) as call:
        task = call("CreateCloudRecording", create_params(user, room="9201"))["TaskId"]
        assert task
        key = {"SdkAppId": SDKAPPID, "TaskId": task}
        assert call("DescribeCloudRecording", key)["Status"] == "Idle"
        modify = {**key, "SubscribeStreamUserIds": {"SubscribeAudioUserIds": ["alice"],
                                                    "UnSubscribeVideoUserIds": ["carol"]}}
        assert call("ModifyCloudRecording", modify)["TaskId"] == task
        assert call("DeleteCloudRecording", key)["TaskId"] == task
        try:  # the recorder winds down, then the task is gone
            assert call("DescribeCloudRecording", key)["Status"] == "Exited"
        except ApiError as exc:
            assert exc.code == "ResourceNotFound"
        with pytest.raises(ApiError) as wrong:
            call("DescribeCloudRecording", key, secret_key="not-the-secret-key")
        assert wrong.value.code == "AuthFailure.SignatureFailure"


def test_node_sdk_get_requests_with_a_usersig(stack: LocalStack, home: Path) -> None:
    """GET: the SDK signs its own encoding of the query (a UserSig's "*" stays as it is, where
    Python's would escape it); the API takes it."""
    with node_sdk(stack, home, "127.0.0.1", method="GET") as call:
        # a UserSig holds "*" (TLSSigAPIv2's "+") more often than not: take the first that does
        params = next(p for p in (create_params(f"rec_node_get{i}", room="9202") for i in range(500))
                      if "*" in p["UserSig"])
        task = call("CreateCloudRecording", params)["TaskId"]
        key = {"SdkAppId": SDKAPPID, "TaskId": task}
        assert call("DescribeCloudRecording", key)["Status"] == "Idle"
        assert call("DeleteCloudRecording", key)["TaskId"] == task
