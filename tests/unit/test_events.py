"""Every callback event body, field by field, as spec §5.3 gives it; and the dedup keys that
make an event once per task, per recorder or per file."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import events
from chalicelib.events import FileStatus, LeaveCode, OutputFile, UploadStatus
from chalicelib.models import RecordParams
from chalicelib.tasks import StorageFile, TaskParams, TaskRecord

NOW_MS = 1_768_908_622_488


def task(room: str = "8848", room_type: int = 1) -> TaskRecord:
    return TaskRecord(task_id="Ab+cd/ef.", sdkappid=1400000001, room_id=room, room_id_type=room_type,
                      user_id="robot_1", params=TaskParams(RecordParams(RecordMode=1)), params_hash="h",
                      created_ms=0, api_expires_ms=0, usersig_expires_s=0)


def body(event: events.Event, of: TaskRecord | None = None) -> dict[str, Any]:
    return event.body(of or task(), NOW_MS)


def test_envelope_and_room_id_type() -> None:
    got = body(events.recorder_start(0))
    assert got == {"EventGroupId": 3, "EventType": 301, "EventInfo": {
        "RoomId": 8848, "EventTs": 1_768_908_622, "EventMsTs": NOW_MS, "UserId": "robot_1", "TaskId": "Ab+cd/ef.",
        "Payload": {"Status": 0}}}
    assert body(events.recorder_start(0), task("room a", 0))["EventInfo"]["RoomId"] == "room a"  # the client's type
    assert type(got["EventType"]) is int and "CallbackTs" not in got  # the sender stamps CallbackTs


MADE = OutputFile("1400_8848__UserId_s_dQ..__UserId_e_main.mp4", "u", "audio_video", "main", 1000, 61000)


@pytest.mark.parametrize(("event", "event_type", "payload"), [
    (events.recorder_start(1), 301, {"Status": 0}),
    (events.recorder_stop(LeaveCode.IDLE), 302, {"LeaveCode": 99}),
    (events.upload_start(0), 303, {"Status": 0}),
    (events.file_info("a.m3u8"), 304, {"FileList": "a.m3u8"}),
    (events.upload_stop(UploadStatus.FILES_LEFT), 305, {"Status": 1}),
    (events.failover(2), 306, {"Status": 0}),
    (events.file_slice(StorageFile("a.m3u8", "u", "audio", 1234)), 307,
     {"FileName": "a.m3u8", "UserId": "u", "TrackType": "audio", "BeginTimeStamp": 1234}),
    (events.upload_error("NoSuchBucket", "gone", 0, 5), 308, {"Code": "NoSuchBucket", "Message": "gone"}),
    (events.download_image_error("https://x/y.png", 0), 309, {"Url": "https://x/y.png"}),
    (events.mp4_stop(MADE, FileStatus.STORED), 310, {"Status": 0, "FileList": [MADE.name], "FileMessage": [{
        "FileName": MADE.name, "UserId": "u", "TrackType": "audio_video", "MediaId": "main",
        "StartTimeStamp": 1000, "EndTimeStamp": 61000}]}),
    (events.mp4_stop(MADE, FileStatus.NOT_STORED), 310, {"Status": 1, "FileList": [], "FileMessage": []}),
    (events.mp4_failed("stem"), 310, {"Status": 2, "FileList": [], "FileMessage": []}),
    (events.vod_commit(MADE, "5285890", "https://vod/x.mp4", ""), 311, {"Status": 0, "TencentVod": {
        "UserId": "u", "TrackType": "audio_video", "MediaId": "main", "FileId": "5285890",
        "VideoUrl": "https://vod/x.mp4", "CacheFile": MADE.name, "StartTimeStamp": 1000, "EndTimeStamp": 61000}}),
    (events.vod_commit(MADE, "", "", "VOD ApplyUpload failed"), 311, {"Status": 2, "Errmsg": "VOD ApplyUpload failed",
     "TencentVod": {"UserId": "u", "TrackType": "audio_video", "MediaId": "main", "FileId": "", "VideoUrl": "",
                    "CacheFile": MADE.name, "StartTimeStamp": 1000, "EndTimeStamp": 61000}}),
    (events.vod_stop(failed=True), 312, {"Status": 1}),
    (events.vod_stop(failed=False), 312, {"Status": 0}),
])
def test_payloads(event: events.Event, event_type: int, payload: dict[str, Any]) -> None:
    got = body(event)
    assert got["EventType"] == event_type and got["EventInfo"]["Payload"] == payload
    assert all(type(v) is not bool and (type(v) is int or not isinstance(v, int)) for v in payload.values())


def test_leave_codes_are_trtcs() -> None:
    assert {c.name: int(c) for c in LeaveCode} == {
        "API_STOP": 0, "KICKED_BY_CUSTOMER": 1, "ROOM_DISMISSED": 2, "SERVER_KICK": 3, "SERVER_DISMISSED_ROOM": 4,
        "IDLE": 99, "ROOM_TIMEOUT": 100, "SAME_USER": 101}


def test_dedup_keys_say_how_often_an_event_may_happen() -> None:
    # once per task: whoever sends it (the recorder, or the reaper for a dead one)
    assert events.recorder_stop(LeaveCode.API_STOP).dedup_key == events.recorder_stop(LeaveCode.SERVER_KICK).dedup_key
    assert events.upload_stop(UploadStatus.ALL_STORED).dedup_key == events.upload_stop(UploadStatus.FILES_LEFT).dedup_key
    assert events.vod_stop(True).dedup_key == events.vod_stop(False).dedup_key
    # once per recorder
    for per_recorder in (events.recorder_start, events.upload_start, events.failover):
        assert per_recorder(1).dedup_key != per_recorder(2).dedup_key
    # once per file, and a file's later success is not taken for its earlier failure
    assert events.file_info("a.m3u8").dedup_key != events.file_info("b.m3u8").dedup_key
    assert events.mp4_stop(MADE, FileStatus.STORED).dedup_key != events.mp4_stop(MADE, FileStatus.NOT_STORED).dedup_key
    assert events.vod_commit(MADE, "1", "u", "").dedup_key != events.vod_commit(MADE, "", "", "x").dedup_key
    # upload errors: at most one a second per recorder
    assert events.upload_error("a", "b", 0, 5).dedup_key == events.upload_error("c", "d", 0, 5).dedup_key
    assert events.upload_error("a", "b", 0, 5).dedup_key != events.upload_error("a", "b", 0, 6).dedup_key
