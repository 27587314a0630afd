"""Limits hold across API processes: they are counted in DynamoDB, not in process memory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.support.sdk import LIMITED_APP, LIMITED_ID, LIMITED_KEY, LIMITED_SIG_KEY, create_request, describe
from tests.support.stack import ROOT, LocalStack, free_port, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def second_api(stack: LocalStack) -> Iterator[str]:
    port = free_port()
    log = open(stack.run_dir / "logs" / "api-second.log", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "infra/local/api_server.py"), "--port", str(port)],
                            cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 30, "the second API process")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_rate_and_concurrency_limits_span_processes(stack: LocalStack, second_api: str) -> None:
    stack.admin("add-app", "--sdkappid", str(LIMITED_APP), "--secret-id", LIMITED_ID, "--secret-key", LIMITED_KEY,
                "--usersig-key", LIMITED_SIG_KEY, "--janus-url", stack.janus_url, "--room-namespace", "--qps", "5",
                "--max-concurrent", "2")
    kw = {"secret_id": LIMITED_ID, "secret_key": LIMITED_KEY}
    endpoints = [stack.api_endpoint, second_api]
    clients = [stack.client(endpoint=e, **kw) for e in endpoints]
    # concurrency: whatever tasks an earlier test left running count, through either process
    created, refused = [], 0
    for i in range(4):
        try:
            created.append(clients[i % 2].CreateCloudRecording(
                create_request(f"rec_mp{i}", room="7100", sdkappid=LIMITED_APP, key=LIMITED_SIG_KEY)).TaskId)
        except TencentCloudSDKException as exc:
            assert exc.code == "FailedOperation.RestrictedConcurrency"
            refused += 1
    assert len(created) <= 2 and refused >= 2
    while time.time() % 1 > 0.3:
        time.sleep(0.02)
    outcomes = []
    for i in range(8):
        try:
            describe(stack, "nonexistent", sdkappid=LIMITED_APP, endpoint=endpoints[i % 2], **kw)
        except TencentCloudSDKException as exc:
            outcomes.append(exc.code)
    assert outcomes == ["ResourceNotFound"] * 5 + ["RequestLimitExceeded"] * 3
