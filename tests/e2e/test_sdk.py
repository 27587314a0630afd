"""The running API driven by the official tencentcloud-sdk-python-trtc client: all four
actions, and every error class raised as TencentCloudSDKException with the right code."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest import mock

import pytest
import requests
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.trtc.v20190722 import models

from chalicelib.signing import sign_tc3
from chalicelib.usersig import gen_usersig
from tests.support.sdk import LIMITED_ID, LIMITED_KEY, LIMITED_SIG_KEY, create_request, delete, describe
from tests.support.stack import SDKAPPID, LocalStack

pytestmark = pytest.mark.e2e


def sdk_error(call: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as exc:
        call()
    assert exc.value.requestId, "API errors carry a RequestId"
    return exc.value


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_all_four_actions(stack: LocalStack, method: str) -> None:
    client = stack.client(method=method)
    created = client.CreateCloudRecording(create_request(f"rec_sdk_{method}"))
    task_id = created.TaskId
    assert task_id and created.RequestId
    described = describe(stack, task_id, method=method)
    assert described.TaskId == task_id and described.Status == "Idle" and described.StorageFileList == []
    modify = models.ModifyCloudRecordingRequest()
    modify.from_json_string(json.dumps({"SdkAppId": SDKAPPID, "TaskId": task_id, "SubscribeStreamUserIds": {
        "SubscribeAudioUserIds": ["alice", "bob"], "UnSubscribeVideoUserIds": ["carol"]}}))
    assert client.ModifyCloudRecording(modify).TaskId == task_id
    assert delete(stack, task_id, method=method).TaskId == task_id
    # the recorder finishes and the task is gone for the API
    def gone() -> bool:
        try:
            status = describe(stack, task_id).Status
            assert status == "Exited"
            return False
        except TencentCloudSDKException as exc:
            assert exc.code == "ResourceNotFound"
            return True
    deadline = time.monotonic() + 20
    while not gone():
        assert time.monotonic() < deadline, "the task did not end after Delete"
        time.sleep(0.3)


def test_auth_errors(stack: LocalStack, limited_app: int) -> None:
    task = "whatever"
    assert sdk_error(lambda: describe(stack, task, secret_key="wrong")).code == "AuthFailure.SignatureFailure"
    assert sdk_error(lambda: describe(stack, task, secret_id="AKIDNOBODY")).code == "AuthFailure.SecretIdNotFound"
    assert sdk_error(lambda: describe(stack, task, sdkappid=limited_app)).code == "AuthFailure.UnauthorizedOperation"
    skewed = mock.Mock(time=lambda: time.time() - 600)
    with mock.patch("tencentcloud.common.abstract_client.time", skewed):
        assert sdk_error(lambda: describe(stack, task)).code == "AuthFailure.SignatureExpire"


def test_action_and_version_errors(stack: LocalStack) -> None:
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=stack.api_endpoint))
    cred = credential.Credential("AKIDLOCALDEV", "local-dev-secret")
    common = CommonClient("trtc", "2019-07-22", cred, "ap-guangzhou", profile=profile)
    assert sdk_error(lambda: common.call_json("StartCloudRecordingNow", {"SdkAppId": SDKAPPID})).code == (
        "InvalidAction")
    old = CommonClient("trtc", "2017-01-01", cred, "ap-guangzhou", profile=profile)
    assert sdk_error(lambda: old.call_json("DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "x"})).code == (
        "NoSuchVersion")


def test_malformed_body(stack: LocalStack) -> None:
    body, ts = b'{"SdkAppId": 1400000001, ', int(time.time())
    headers = {"Content-Type": "application/json", "X-TC-Action": "DescribeCloudRecording",
               "X-TC-Version": "2019-07-22", "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
               "Authorization": sign_tc3("AKIDLOCALDEV", "local-dev-secret", "POST", stack.api_endpoint,
                                         "application/json", body, ts)}
    resp = requests.post(f"http://{stack.api_endpoint}/", data=body, headers=headers, timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    out = resp.json()["Response"]
    assert out["Error"]["Code"] == "InvalidParameter.BodyParamsError" and out["RequestId"]


def test_parameter_errors(stack: LocalStack) -> None:
    client = stack.client()
    no_storage = create_request("rec_p1")
    no_storage.StorageParams = None
    assert sdk_error(lambda: client.CreateCloudRecording(no_storage)).code == "MissingParameter.StorageParams"
    assert sdk_error(lambda: client.CreateCloudRecording(create_request("rec_p2", MaxIdleTime=3))).code == (
        "InvalidParameter.OutOfRange")
    bad_sig = create_request("rec_p3")
    bad_sig.UserSig = gen_usersig(SDKAPPID, "not-the-key", "rec_p3", int(time.time()))
    err = sdk_error(lambda: client.CreateCloudRecording(bad_sig))
    assert err.code == "InvalidParameter.UserSig" and "key" in err.message
    assert sdk_error(lambda: client.CreateCloudRecording(create_request("rec_p4", room="not-a-number"))).code == (
        "InvalidParameter.RoomId")
    assert sdk_error(lambda: describe(stack, "no-such-task")).code == "ResourceNotFound"


def test_limits(stack: LocalStack, limited_app: int) -> None:
    kw = {"secret_id": LIMITED_ID, "secret_key": LIMITED_KEY}
    client = stack.client(**kw)
    ids = [client.CreateCloudRecording(create_request(f"rec_l{i}", sdkappid=limited_app, key=LIMITED_SIG_KEY)).TaskId
           for i in range(2)]
    err = sdk_error(lambda: client.CreateCloudRecording(
        create_request("rec_l3", sdkappid=limited_app, key=LIMITED_SIG_KEY)))
    assert err.code == "FailedOperation.RestrictedConcurrency"
    while time.time() % 1 > 0.3:  # start at the beginning of a second
        time.sleep(0.02)
    codes = []
    for _ in range(7):
        try:
            describe(stack, ids[0], sdkappid=limited_app, **kw)
            codes.append("ok")
        except TencentCloudSDKException as exc:
            codes.append(exc.code)
    assert codes == ["ok"] * 5 + ["RequestLimitExceeded"] * 2
    for task_id in ids:
        time.sleep(0.25)
        delete(stack, task_id, sdkappid=limited_app, **kw)
