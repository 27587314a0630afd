"""A task's recording report made of its recorders' parts: the shape a console reads, one
stream across a hand-over (counters summed, series joined, the hole a gap), shard parts, the
task's start and end, and keys that name parts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import recording_report
from chalicelib.recording_report import merge, part_key, part_of_key

TASK = "k2V0+aGVyZS1pcy1hLXRhc2s."
S = 1_768_908_600_000  # ms


def stream(user: str = "alice", kind: str = "video", joined: int = S, last: int = S + 10_000, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "UserId": user, "MediaId": "main", "Kind": kind, "Joined": joined, "Left": None, "LastAt": last,
        "DurationS": (last - joined) / 1000, "FramesReceived": 150, "FramesLost": 2, "KeyframeRequests": 1,
        "Bytes": 125_000 if kind == "video" else None, "BitrateKbps": 100.0 if kind == "video" else None,
        "Bitrate": [[joined, 100.0], [joined + 5000, 100.0]] if kind == "video" else [],
        "Resolutions": [{"At": joined, "Width": 320, "Height": 180}] if kind == "video" else [],
        "Gaps": [], "AvOffsetMs": None}
    return {**base, **over}


def part(ha: int, streams: list[dict[str, Any]], started: int, ended: int | None = None, task_ended: bool = False,
         shard: int = 0) -> dict[str, Any]:
    return {"TaskId": TASK, "SdkAppId": 1400000001, "RoomId": "8848", "Ha": ha, "Shard": shard, "StartedAt": started,
            "EndedAt": ended, "TaskEnded": task_ended, "UpdatedAt": ended or started, "Streams": streams}


def test_a_stream_across_a_hand_over_is_one_stream_with_the_hole_as_a_gap() -> None:
    before = part(0, [stream(last=S + 10_000, Gaps=[{"At": S + 3000, "DurationMs": 1500}]),
                      stream(kind="audio", last=S + 10_000)], started=S - 500, ended=S + 10_200)
    after = part(1, [stream(joined=S + 13_000, last=S + 23_000, AvOffsetMs=-12.5,
                            Resolutions=[{"At": S + 13_000, "Width": 320, "Height": 180},
                                         {"At": S + 20_000, "Width": 640, "Height": 360}]),
                     stream(kind="audio", joined=S + 13_000, last=S + 23_000, Left=S + 23_000)],
                 started=S + 12_000, ended=S + 24_000, task_ended=True)
    report = merge([after, before])  # in any order
    assert report is not None
    assert list(report) == ["TaskId", "SdkAppId", "RoomId", "StartedAt", "EndedAt", "HandOvers", "Streams"]
    assert (report["TaskId"], report["SdkAppId"], report["RoomId"]) == (TASK, 1400000001, "8848")
    assert (report["StartedAt"], report["EndedAt"]) == (S - 500, S + 24_000)
    assert report["HandOvers"] == [{"At": S + 12_000, "From": 0, "To": 1}]
    audio, video = report["Streams"]  # by Joined, then UserId, MediaId, Kind
    assert list(video) == list(recording_report.STREAM_FIELDS)
    assert (video["UserId"], video["MediaId"], video["Kind"]) == ("alice", "main", "video")
    assert (video["Joined"], video["Left"]) == (S, None)
    assert video["DurationS"] == 20.0 and video["FramesReceived"] == 300 and video["FramesLost"] == 4
    assert video["KeyframeRequests"] == 2 and video["BitrateKbps"] == 100.0
    assert [p[0] for p in video["Bitrate"]] == [S, S + 5000, S + 13_000, S + 18_000]
    assert video["Resolutions"] == [{"At": S, "Width": 320, "Height": 180}, {"At": S + 20_000, "Width": 640, "Height": 360}]
    assert video["Gaps"] == [{"At": S + 3000, "DurationMs": 1500}, {"At": S + 10_000, "DurationMs": 3000}]
    assert video["AvOffsetMs"] == -12.5
    assert audio["Left"] == S + 23_000 and audio["BitrateKbps"] is None and audio["Bitrate"] == []


def test_the_end_is_the_task_end_only_and_a_stream_gone_at_the_hand_over_left() -> None:
    handed = part(0, [stream(user="bob")], started=S, ended=S + 10_500)  # bob was gone when ha1 came
    crashed = part(1, [stream(user="carol", joined=S + 12_000, last=S + 14_000)], started=S + 11_000)
    report = merge([handed, crashed])
    assert report is not None and report["EndedAt"] is None  # no recorder ended the task (yet)
    bob = next(s for s in report["Streams"] if s["UserId"] == "bob")
    assert bob["Left"] == S + 10_000 and bob["Gaps"] == []


def test_shard_parts_add_their_streams_and_are_no_hand_over() -> None:
    main = part(0, [stream(user="alice")], started=S, ended=S + 11_000, task_ended=True)
    shard = part(0, [stream(user="zed", joined=S + 1000)], started=S + 500, ended=S + 10_800, shard=1)
    report = merge([shard, main])
    assert report is not None
    assert [s["UserId"] for s in report["Streams"]] == ["alice", "zed"]
    assert report["HandOvers"] == [] and report["StartedAt"] == S and report["EndedAt"] == S + 11_000


def test_no_parts_no_report_and_a_broken_part_is_refused() -> None:
    assert merge([]) is None
    with pytest.raises(ValueError, match="no int Ha"):
        merge([{"TaskId": TASK, "StartedAt": S, "Streams": []}])
    with pytest.raises(ValueError, match="stream without every field"):
        merge([part(0, [{"UserId": "alice"}], started=S)])


@pytest.mark.parametrize(("ha", "shard", "key"), [
    (0, 0, f"reports/{TASK}/ha0.json"), (2, 0, f"reports/{TASK}/ha2.json"), (1, 3, f"reports/{TASK}/ha1-shard3.json")])
def test_part_keys(ha: int, shard: int, key: str) -> None:
    assert part_key(TASK, ha, shard) == key and part_of_key(key) == (ha, shard)


def test_keys_that_name_no_part() -> None:
    assert part_of_key(f"reports/{TASK}/notes.txt") is None and part_of_key(f"reports/{TASK}/ha.json") is None


class ListingBucket:
    def __init__(self, objects: dict[str, tuple[bytes, float]]) -> None:
        self.objects = objects

    def listing(self, prefix: str, limit: int | None = None) -> list[tuple[str, float]]:
        return [(k, when) for k, (_, when) in sorted(self.objects.items()) if k.startswith(prefix)]

    def get(self, key: str) -> bytes:
        return self.objects[key][0]


def test_read_and_list_from_the_bucket() -> None:
    other = "b3RoZXI."
    bucket = ListingBucket({
        part_key(TASK, 0): (json.dumps(part(0, [stream()], started=S)).encode(), 100.0),
        part_key(TASK, 1): (b"{not json", 300.0),  # left out
        part_key(other, 0): (json.dumps({**part(0, [], started=S), "TaskId": other}).encode(), 200.0),
        f"reports/{other}/readme.txt": (b"", 900.0),
    })
    report = recording_report.read(bucket, TASK)  # type: ignore[arg-type]
    assert report is not None and len(report["Streams"]) == 1
    assert recording_report.read(bucket, "nothing-here") is None  # type: ignore[arg-type]
    assert recording_report.tasks(bucket, 10) == [  # type: ignore[arg-type]
        {"TaskId": TASK, "UpdatedAt": 300_000, "Parts": 2}, {"TaskId": other, "UpdatedAt": 200_000, "Parts": 1}]
    assert [t["TaskId"] for t in recording_report.tasks(bucket, 1)] == [TASK]  # type: ignore[arg-type]
