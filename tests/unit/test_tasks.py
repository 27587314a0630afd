"""The task's parameters decoded once: what they answer (outputs, canvas, names), the stored
form read back exactly, and storage keys that never show."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.models import CreateCloudRecordingRequest, MixLayoutParams, SubscribeStreamUserIds, TencentVod
from chalicelib.task_store import from_item, to_item
from chalicelib.tasks import StorageFile, StorageKeys, TaskParams, decode_params, encode_params
from chalicelib.usersig import gen_usersig
from tests.support.task_records import params, task_record


def create(**over: object) -> CreateCloudRecordingRequest:
    body = {"SdkAppId": 1400000001, "RoomId": "8848", "UserId": "rec", "UserSig": gen_usersig(1400000001, "k", "rec", 0),
            "RecordParams": {"RecordMode": 2, "OutputFormat": 3},
            "StorageParams": {"CloudStorage": {"Vendor": 0, "Region": "ap-guangzhou", "Bucket": "b",
                                               "AccessKey": "AKsecret1", "SecretKey": "SKsecret2",
                                               "FileNamePrefix": ["a", "b"]}},
            "MixTranscodeParams": {"VideoParams": {"Width": 1280, "Height": 720, "Fps": 15, "BitRate": 1000000,
                                                   "Gop": 2}},
            **over}
    return CreateCloudRecordingRequest.model_validate(body)


def test_create_request_split_into_parameters_and_keys() -> None:
    task_params, keys = TaskParams.of_request(create())
    assert keys == StorageKeys("AKsecret1", "SKsecret2")
    assert task_params.storage is not None and task_params.storage.file_name_prefix == ("a", "b")
    assert task_params.mixed and task_params.canvas() == (1280, 720)
    shown = repr(task_params) + repr(keys) + repr(task_record(params=task_params, storage_keys=keys))
    assert "AKsecret1" not in shown and "SKsecret2" not in shown
    assert decode_params(encode_params(task_params, keys)) == (task_params, keys)


def test_vod_parameters_read_back() -> None:
    vod = create(StorageParams={"CloudVod": {"TencentVod": {"MediaType": 3, "ClassId": 7, "UserDefineRecordId": "x"}}})
    task_params, keys = TaskParams.of_request(vod)
    assert keys is None and task_params.storage is None and task_params.vod == TencentVod(MediaType=3, ClassId=7,
                                                                                         UserDefineRecordId="x")
    assert decode_params(encode_params(task_params, keys)) == (task_params, None)
    assert task_params.file_name_prefix == ()


@pytest.mark.parametrize(("record", "vod", "mp4", "aac", "keep_hls", "vod_hls"), [
    ({"OutputFormat": 0}, None, False, False, True, False),
    ({"OutputFormat": 1}, None, True, False, True, False),
    ({"OutputFormat": 2}, None, False, True, True, False),
    ({"OutputFormat": 3}, None, True, False, False, False),
    ({"OutputFormat": 4}, None, False, True, False, False),
    ({"OutputFormat": 1}, 0, True, False, False, False),  # VOD: OutputFormat is ignored
    ({}, 1, False, False, False, True),
    ({}, 2, False, True, False, False),
    ({}, 3, True, False, False, True),
    ({}, 4, False, True, False, True),
])
def test_wanted_outputs(record: dict[str, int], vod: int | None, mp4: bool, aac: bool, keep_hls: bool,
                        vod_hls: bool) -> None:
    task_params = params(record)
    if vod is not None:
        task_params = dataclasses.replace(task_params, storage=None, vod=TencentVod(MediaType=vod))
    want = task_params.wanted()
    assert (want.mp4, want.aac, want.keep_hls, want.vod, want.vod_hls) == (mp4, aac, keep_hls, vod is not None, vod_hls)


def test_names_come_from_the_task() -> None:
    task = task_record("T+1.", params=params(prefix=("rec", "day1")))
    assert task.directory == "rec/day1/T+1./" == task.naming(2).directory
    assert task.naming(2).mixed_playlist() == "ha2_1400000001_8848.m3u8"
    assert params().canvas() == (360, 640)  # TRTC's default mixed picture


def test_the_stored_item_reads_back() -> None:
    task = task_record("T", subscription=SubscribeStreamUserIds(SubscribeVideoUserIds=["a", "b.*$"]),
                       layout=MixLayoutParams(MixLayoutMode=3, MaxResolutionUserId="a"), leave_code=99,
                       files={"f.m3u8": StorageFile("f.m3u8", "u", "audio", 5)})
    assert from_item(to_item(task)) == task
    assert from_item(to_item(dataclasses.replace(task, subscription=None, layout=None))).layout is None
