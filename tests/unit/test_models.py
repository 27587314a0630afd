"""Every request field validated as spec §2 says, with the error code a TRTC user gets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.errors import ParameterError
from chalicelib.models import CreateCloudRecordingRequest, ModifyCloudRecordingRequest
from chalicelib.validation import parse

BASE: dict[str, Any] = {
    "SdkAppId": 1400000001, "RoomId": "3560", "UserId": "rec_1", "UserSig": "sig",
    "RecordParams": {"RecordMode": 1},
    "StorageParams": {"CloudStorage": {"Vendor": 1, "Region": "us-east-1", "Bucket": "b",
                                       "AccessKey": "ak", "SecretKey": "sk"}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


_DELETE = object()
MIX = {"RecordMode": 2}


def _code(data: dict[str, Any], strict: bool = True) -> str:
    with pytest.raises(ParameterError) as exc:
        parse(CreateCloudRecordingRequest, data, strict)
    return exc.value.code


def test_defaults_are_trtcs() -> None:
    req = parse(CreateCloudRecordingRequest, BASE, True)
    rp = req.RecordParams
    assert (rp.MaxIdleTime, rp.StreamType, rp.OutputFormat, rp.AvMerge, rp.MaxMediaFileDuration,
            rp.MediaId, rp.SubscribeAbility) == (30, 0, 0, 0, 1440, 0, 0)
    assert (req.RoomIdType, req.ResourceExpiredHour) == (1, 72)
    assert req.canvas() == (360, 640)


def test_unknown_fields_are_ignored() -> None:
    data = _with("NewFieldFromAFutureSdk", {"x": 1})
    data["RecordParams"]["AlsoNew"] = 5
    assert parse(CreateCloudRecordingRequest, data, True).RoomId == "3560"


def test_secrets_do_not_show_in_repr() -> None:
    text = repr(parse(CreateCloudRecordingRequest, BASE, True))
    assert "sig" not in text.replace("SecretStr", "") and "'sk'" not in text and "'ak'" not in text


@pytest.mark.parametrize("path,value,code", [
    ("SdkAppId", _DELETE, "MissingParameter.SdkAppId"),
    ("RoomId", _DELETE, "MissingParameter.RoomId"),
    ("UserId", _DELETE, "MissingParameter.UserId"),
    ("UserId", "", "MissingParameter.UserId"),
    ("UserSig", _DELETE, "MissingParameter.UserSig"),
    ("UserSig", "", "MissingParameter.UserSig"),
    ("RecordParams", _DELETE, "MissingParameter.RecordParams"),
    ("RecordParams.RecordMode", _DELETE, "MissingParameter.RecordMode"),
    ("StorageParams", _DELETE, "MissingParameter.StorageParams"),
    ("StorageParams", {}, "MissingParameter.CloudStorage"),
    ("StorageParams.CloudStorage.Vendor", _DELETE, "MissingParameter.Vendor"),
    ("StorageParams.CloudStorage.Region", _DELETE, "MissingParameter.Region"),
    ("StorageParams.CloudStorage.Bucket", "", "MissingParameter.Bucket"),
    ("StorageParams.CloudStorage.AccessKey", "", "MissingParameter.AccessKey"),
    ("StorageParams.CloudStorage.SecretKey", _DELETE, "MissingParameter.SecretKey"),
    ("SdkAppId", "1400000001", "InvalidParameter"),
    ("SdkAppId", 0, "InvalidParameter.OutOfRange"),
    ("RoomId", 3560, "InvalidParameter"),
    ("RoomId", "abc", "InvalidParameter.RoomId"),
    ("RoomId", "0123", "InvalidParameter.RoomId"),
    ("RoomId", "4294967295", "InvalidParameter.RoomId"),
    ("UserId", "has space", "InvalidParameter.UserId"),
    ("UserId", "x" * 33, "InvalidParameter.UserId"),
    ("RoomIdType", 2, "InvalidParameter.OutOfRange"),
    ("RecordParams.RecordMode", 3, "InvalidParameter.OutOfRange"),
    ("RecordParams.RecordMode", True, "InvalidParameter"),
    ("RecordParams.MaxIdleTime", 4, "InvalidParameter.OutOfRange"),
    ("RecordParams.MaxIdleTime", 86401, "InvalidParameter.OutOfRange"),
    ("RecordParams.MaxIdleTime", 30.5, "InvalidParameter"),
    ("RecordParams.StreamType", 3, "InvalidParameter.OutOfRange"),
    ("RecordParams.OutputFormat", 5, "InvalidParameter.OutOfRange"),
    ("RecordParams.AvMerge", 2, "InvalidParameter.OutOfRange"),
    ("RecordParams.MaxMediaFileDuration", 0, "InvalidParameter.OutOfRange"),
    ("RecordParams.MaxMediaFileDuration", 1441, "InvalidParameter.OutOfRange"),
    ("RecordParams.MediaId", 3, "InvalidParameter.OutOfRange"),
    ("RecordParams.FillType", 2, "InvalidParameter.OutOfRange"),
    ("RecordParams.SubscribeAbility", 2, "InvalidParameter.OutOfRange"),
    ("RecordParams.SubscribeStreamUserIds.SubscribeAudioUserIds", [f"u{i}" for i in range(33)],
     "InvalidParameter.OutOfRange"),
    ("RecordParams.SubscribeStreamUserIds.SubscribeVideoUserIds", "u1", "InvalidParameter"),
    ("ResourceExpiredHour", 5, "InvalidParameter.OutOfRange"),
    ("ResourceExpiredHour", 721, "InvalidParameter.OutOfRange"),
    ("StorageParams.CloudStorage.Vendor", 2, "InvalidParameter.OutOfRange"),
    ("StorageParams.CloudStorage.FileNamePrefix", ["ok", "bad/slash"], "InvalidParameter"),
    ("StorageParams.CloudVod", {"TencentVod": {}}, "InvalidParameter"),
])
def test_field_errors(path: str, value: Any, code: str) -> None:
    assert _code(_with(path, value)) == code


def test_allow_and_block_for_the_same_kind_conflict() -> None:
    data = _with("RecordParams.SubscribeStreamUserIds", {"SubscribeAudioUserIds": ["a"],
                                                         "UnSubscribeAudioUserIds": ["b"]})
    assert _code(data) == "InvalidParameter"
    ok = _with("RecordParams.SubscribeStreamUserIds", {"SubscribeAudioUserIds": ["a"],
                                                       "UnSubscribeVideoUserIds": ["b"]})
    assert parse(CreateCloudRecordingRequest, ok, True)


def test_string_room_rules() -> None:
    assert parse(CreateCloudRecordingRequest, {**_with("RoomIdType", 0), "RoomId": "room #1 [a]"}, True)
    assert _code({**_with("RoomIdType", 0), "RoomId": "x" * 65}) == "InvalidParameter.StrRoomId"
    assert _code({**_with("RoomIdType", 0), "RoomId": "bad\"quote"}) == "InvalidParameter.StrRoomId"


def test_vod_storage() -> None:
    vod = {"CloudVod": {"TencentVod": {"MediaType": 2, "ExpireTime": 0}}}
    assert _code(_with("StorageParams", vod)) == "InvalidParameter.RecordAudioOnly"
    data = _with("StorageParams", vod)
    data["RecordParams"]["StreamType"] = 1
    assert parse(CreateCloudRecordingRequest, data, True).StorageParams.CloudVod is not None
    assert _code(_with("StorageParams", {"CloudVod": {}})) == "MissingParameter"
    bad_id = {"CloudVod": {"TencentVod": {"UserDefineRecordId": "has space"}}}
    assert _code(_with("StorageParams", bad_id)) == "InvalidParameter"


@pytest.mark.parametrize("video,code", [
    ({"Width": 1920, "Height": 1080, "Fps": 15, "BitRate": 550000, "Gop": 10}, None),
    ({"Width": 1920, "Height": 1920, "Fps": 15, "BitRate": 550000, "Gop": 10}, "InvalidParameter.VideoResolution"),
    ({"Width": 1921, "Height": 100, "Fps": 15, "BitRate": 550000, "Gop": 10}, "InvalidParameter.OutOfRange"),
    ({"Width": 640, "Height": 360, "Fps": 61, "BitRate": 550000, "Gop": 10}, "InvalidParameter.OutOfRange"),
    ({"Width": 640, "Height": 360, "Fps": 15, "BitRate": 63999, "Gop": 10}, "InvalidParameter.OutOfRange"),
    ({"Width": 640, "Height": 360, "Fps": 15, "BitRate": 550000}, "MissingParameter"),
])
def test_video_params(video: dict[str, int], code: str | None) -> None:
    data = _with("RecordParams", MIX)
    data["MixTranscodeParams"] = {"VideoParams": video}
    if code is None:
        assert parse(CreateCloudRecordingRequest, data, True).canvas() == (video["Width"], video["Height"])
    else:
        assert _code(data) == code


@pytest.mark.parametrize("audio,code", [
    ({"SampleRate": 4, "Channel": 2, "BitRate": 64000}, "InvalidParameter.OutOfRange"),
    ({"SampleRate": 1, "Channel": 3, "BitRate": 64000}, "InvalidParameter.OutOfRange"),
    ({"SampleRate": 1, "Channel": 2, "BitRate": 128001}, "InvalidParameter.OutOfRange"),
    ({"SampleRate": 1, "Channel": 2}, "MissingParameter"),
])
def test_audio_params(audio: dict[str, int], code: str) -> None:
    data = _with("RecordParams", MIX)
    data["MixTranscodeParams"] = {"AudioParams": audio}
    assert _code(data) == code


def _layout(**fields: Any) -> dict[str, Any]:
    data = _with("RecordParams", MIX)
    data["MixTranscodeParams"] = {"VideoParams": {"Width": 1280, "Height": 720, "Fps": 15,
                                                  "BitRate": 1000000, "Gop": 10}}
    data["MixLayoutParams"] = {"MixLayoutMode": 4, **fields}
    return data


def test_custom_layout_inside_and_outside_the_canvas() -> None:
    window = {"Top": 0, "Left": 640, "Width": 640, "Height": 720}
    assert parse(CreateCloudRecordingRequest, _layout(MixLayoutList=[window]), True)
    too_wide = {**window, "Left": 641}
    assert _code(_layout(MixLayoutList=[too_wide])) == "InvalidParameter.PresetLayoutConfig"
    assert _code(_layout()) == "InvalidParameter.PresetLayoutConfig"  # mode 4 needs a list
    assert _code(_layout(MixLayoutList=[window] * 26)) == "InvalidParameter.OutOfRange"
    assert _code(_layout(MixLayoutList=[{**window, "RenderMode": 4}])) == "InvalidParameter.OutOfRange"
    assert _code(_layout(MixLayoutList=[{**window, "Alpha": 256}])) == "InvalidParameter.OutOfRange"


@pytest.mark.parametrize("fields,code", [
    ({"BackGroundColor": "red"}, "InvalidParameter"),
    ({"BackgroundImageUrl": "https://x/bg.gif"}, "InvalidParameter.CheckSuffixFailed"),
    ({"BackgroundImageUrl": "https://x/b g.png"}, "InvalidParameter.BackgroundImageUrl"),
    ({"BackgroundImageUrl": "ftp://x/bg.png"}, "InvalidParameter.BackgroundImageUrl"),
    ({"WaterMarkList": [{"WaterMarkType": 0}]}, "MissingParameter"),
    ({"WaterMarkList": [{"WaterMarkType": 1, "WaterMarkChar": {"Top": 0, "Left": 0, "Width": 10,
                                                               "Height": 10, "Chars": ""}}]}, "MissingParameter"),
    ({"WaterMarkList": [{"WaterMarkType": 2, "WaterMarkTimestamp": {"Pos": 7}}]}, "InvalidParameter.OutOfRange"),
    ({"WaterMarkList": [{"WaterMarkType": 0, "WaterMarkImage": {
        "WaterMarkUrl": "https://x/w.png", "Top": 700, "Left": 0, "Width": 10, "Height": 30}}]},
     "InvalidParameter.OutOfRange"),
    ({"WaterMarkList": [{"WaterMarkType": 2, "WaterMarkTimestamp": {"Pos": 0}}] * 26},
     "InvalidParameter.OutOfRange"),
])
def test_layout_params(fields: dict[str, Any], code: str) -> None:
    data = _layout(**fields)
    data["MixLayoutParams"]["MixLayoutMode"] = 3
    assert _code(data) == code


def test_background_url_with_query_and_watermarks_accepted() -> None:
    data = _layout(BackgroundImageUrl="https://cdn.example.com/bg.JPG?token=a%20b",
                   WaterMarkList=[{"WaterMarkType": 1, "WaterMarkChar": {"Top": 0, "Left": 0, "Width": 100,
                                                                         "Height": 20, "Chars": "李专家"}},
                                  {"WaterMarkType": 2, "WaterMarkTimestamp": {"Pos": 3, "TimeZone": 0}}])
    data["MixLayoutParams"]["MixLayoutMode"] = 1
    req = parse(CreateCloudRecordingRequest, data, True)
    assert req.MixLayoutParams is not None and req.MixLayoutParams.WaterMarkList is not None
    assert req.MixLayoutParams.WaterMarkList[0].WaterMarkChar.FontColor == "0xFFFFFF"  # type: ignore[union-attr]


def test_get_queries_are_coerced_from_strings() -> None:
    data = {"SdkAppId": "1400000001", "RoomId": "3560", "UserId": "rec", "UserSig": "s",
            "RecordParams": {"RecordMode": "2", "MaxIdleTime": "60"},
            "StorageParams": {"CloudStorage": {"Vendor": "0", "Region": "ap-shanghai", "Bucket": "b", "AccessKey": "a",
                                               "SecretKey": "s"}},
            "MixLayoutParams": {"MixLayoutMode": "3", "PureAudioDisableLayout": "True"}}
    req = parse(CreateCloudRecordingRequest, data, strict=False)
    assert req.RecordParams.MaxIdleTime == 60 and req.MixLayoutParams is not None
    assert req.MixLayoutParams.PureAudioDisableLayout is True
    assert _code(dict(data, SdkAppId="abc"), strict=False) == "InvalidParameter"


def test_modify_request() -> None:
    ok = {"SdkAppId": 1, "TaskId": "t", "SubscribeStreamUserIds": {"SubscribeVideoUserIds": ["1.*$"]}}
    assert parse(ModifyCloudRecordingRequest, ok, True).TaskId == "t"
    with pytest.raises(ParameterError) as exc:
        parse(ModifyCloudRecordingRequest, {"SdkAppId": 1}, True)
    assert exc.value.code == "MissingParameter.TaskId"
