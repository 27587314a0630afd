"""Run inside the test's network namespace: Create/Describe/Delete against the stack there
with the official SDK; prints what happened as JSON. With `--keep` it only creates the task
(its recorder stays in the room) and prints its TaskId."""

from __future__ import annotations

import json
import sys
import time

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.trtc.v20190722 import models, trtc_client

from chalicelib.usersig import gen_usersig


def main(port: int, keep: bool = False) -> None:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=10))
    client = trtc_client.TrtcClient(credential.Credential("AKIDLOCALDEV", "local-dev-secret"), "ap-guangzhou",
                                    profile)
    req = models.CreateCloudRecordingRequest()
    req.from_json_string(json.dumps({
        "SdkAppId": 1400000001, "RoomId": "4242", "UserId": "rec_ns",
        "UserSig": gen_usersig(1400000001, "local-dev-usersig-key", "rec_ns", int(time.time())),
        "RecordParams": {"RecordMode": 1}, "StorageParams": {"CloudStorage": {
            "Vendor": 1, "Region": "us-east-1", "Bucket": "b", "AccessKey": "a", "SecretKey": "s"}}}))
    task_id = client.CreateCloudRecording(req).TaskId
    if keep:
        print(json.dumps({"task_id": task_id}))
        return
    d = models.DescribeCloudRecordingRequest()
    d.SdkAppId, d.TaskId = 1400000001, task_id
    status = client.DescribeCloudRecording(d).Status
    x = models.DeleteCloudRecordingRequest()
    x.SdkAppId, x.TaskId = 1400000001, task_id
    client.DeleteCloudRecording(x)
    final = ""
    for _ in range(60):
        try:
            client.DescribeCloudRecording(d)
        except TencentCloudSDKException as exc:
            final = exc.code
            break
        time.sleep(0.5)
    print(json.dumps({"task_id": task_id, "status": status, "after_delete": final}))


if __name__ == "__main__":
    main(int(sys.argv[1]), keep="--keep" in sys.argv[2:])
