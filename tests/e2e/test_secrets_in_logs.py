"""No secret reaches any log of the local stack (API, event pump, recorders): neither from
what ran before in the session nor from the tasks this test drives itself with every secret
on the wire — the SDK's GET mode puts storage keys and the UserSig into the query string."""

from __future__ import annotations

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.support.sdk import (
    ISSUED_USERSIGS,
    LIMITED_ID,
    LIMITED_KEY,
    LIMITED_SIG_KEY,
    STORAGE_KEYS,
    create_request,
    delete,
    describe,
    ended,
)
from tests.support.stack import CALLBACK_KEY, SECRET_KEY, USERSIG_KEY, LocalStack, wait_for

pytestmark = pytest.mark.e2e


def _all_logs(stack: LocalStack) -> str:
    logs = sorted((stack.run_dir / "logs").glob("*.log")) + stack.recorder_logs()
    return "\n".join(p.read_text(errors="replace") for p in logs)


def test_no_secret_in_any_log(stack: LocalStack, limited_app: int) -> None:
    tasks = []
    for method in ("POST", "GET"):
        client = stack.client(method=method)
        task_id = client.CreateCloudRecording(create_request(f"rec_secret_{method}", room="7900")).TaskId
        describe(stack, task_id, method=method)
        delete(stack, task_id, method=method)
        tasks.append(task_id)
    with pytest.raises(TencentCloudSDKException):  # a rejected signature is logged too
        describe(stack, tasks[0], secret_key="not-the-key")
    with pytest.raises(TencentCloudSDKException):  # the other app's credentials, for a task it does not own
        describe(stack, tasks[0], sdkappid=limited_app, secret_id=LIMITED_ID, secret_key=LIMITED_KEY)
    for task_id in tasks:
        wait_for(lambda task_id=task_id: ended(stack, task_id), 30, "the task to end")
        wait_for(lambda task_id=task_id: stack.callbacks.of(task_id, 302), 30, "its 302 callback")
    wait_for(lambda: _all_logs(stack).count("task ended") >= len(tasks), 30, "the recorders' last log lines")
    text = _all_logs(stack)
    assert "api request" in text and "unexpected failure" not in text  # the API logged, and nothing crashed
    secrets = [*STORAGE_KEYS, SECRET_KEY, USERSIG_KEY, CALLBACK_KEY, LIMITED_KEY, LIMITED_SIG_KEY]
    assert len(ISSUED_USERSIGS) >= len(tasks)
    for secret in secrets + ISSUED_USERSIGS:
        assert secret not in text, f"a secret ({secret[:4]}…) reached the logs"
