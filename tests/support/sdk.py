"""Calling the local stack with the official tencentcloud-sdk-python-trtc client, as a
customer's backend does: request builders and the calls the tests repeat."""

from __future__ import annotations

import json
import time
from typing import Any

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.trtc.v20190722 import models

from chalicelib.usersig import gen_usersig
from tests.support.stack import SDKAPPID, USERSIG_KEY, LocalStack

LIMITED_APP, LIMITED_ID, LIMITED_KEY, LIMITED_SIG_KEY = 1400000002, "AKIDLIMITED", "limited-secret", "limited-sig"
STORAGE_KEYS = ("AKSTORAGEE2E", "storage-secret-e2e")
ISSUED_USERSIGS: list[str] = []  # every UserSig the tests sent, for the log check


def create_params(user: str, room: str = "9001", sdkappid: int = SDKAPPID, key: str = USERSIG_KEY,
                  **record: Any) -> dict[str, Any]:
    """CreateCloudRecording's parameters as JSON, with a fresh UserSig for the robot `user`."""
    usersig = gen_usersig(sdkappid, key, user, int(time.time()))
    ISSUED_USERSIGS.append(usersig)
    return {
        "SdkAppId": sdkappid, "RoomId": room, "RoomIdType": 1, "UserId": user,
        "UserSig": usersig,
        "RecordParams": {"RecordMode": 1, "MaxIdleTime": 300, **record},
        "StorageParams": {"CloudStorage": {"Vendor": 1, "Region": "us-east-1", "Bucket": "customer-bucket",
                                           "AccessKey": STORAGE_KEYS[0], "SecretKey": STORAGE_KEYS[1],
                                           "FileNamePrefix": ["rec"]}},
    }


def create_request(user: str, room: str = "9001", sdkappid: int = SDKAPPID, key: str = USERSIG_KEY,
                   **record: Any) -> models.CreateCloudRecordingRequest:
    req = models.CreateCloudRecordingRequest()
    req.from_json_string(json.dumps(create_params(user, room, sdkappid, key, **record)))
    return req


def describe(stack: LocalStack, task_id: str, sdkappid: int = SDKAPPID, **kw: Any) -> Any:
    req = models.DescribeCloudRecordingRequest()
    req.SdkAppId, req.TaskId = sdkappid, task_id
    return stack.client(**kw).DescribeCloudRecording(req)


def delete(stack: LocalStack, task_id: str, sdkappid: int = SDKAPPID, **kw: Any) -> Any:
    req = models.DeleteCloudRecordingRequest()
    req.SdkAppId, req.TaskId = sdkappid, task_id
    return stack.client(**kw).DeleteCloudRecording(req)


def ended(stack: LocalStack, task_id: str) -> bool:
    """Whether the task is gone for the API (Describe answers ResourceNotFound)."""
    try:
        describe(stack, task_id)
        return False
    except TencentCloudSDKException as exc:
        return exc.code == "ResourceNotFound"
