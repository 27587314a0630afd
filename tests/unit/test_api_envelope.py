"""GET queries as the SDK flattens them are rebuilt into nested parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl

from chalicelib.api import unflatten


def test_unflatten_rebuilds_nesting_and_lists() -> None:
    query = ("SdkAppId=1400000001&RoomId=3560&RecordParams.RecordMode=1&"
             "RecordParams.SubscribeStreamUserIds.SubscribeAudioUserIds.0=a&"
             "RecordParams.SubscribeStreamUserIds.SubscribeAudioUserIds.1=b%2Bc&"
             "MixLayoutParams.MixLayoutList.0.Top=10&MixLayoutParams.MixLayoutList.1.Top=20")
    assert unflatten(parse_qsl(query)) == {
        "SdkAppId": "1400000001", "RoomId": "3560",
        "RecordParams": {"RecordMode": "1", "SubscribeStreamUserIds": {"SubscribeAudioUserIds": ["a", "b+c"]}},
        "MixLayoutParams": {"MixLayoutList": [{"Top": "10"}, {"Top": "20"}]},
    }
