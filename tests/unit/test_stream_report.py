"""The recording report's collector, fed synthetic frames as a recording's sink hands them on:
frames received and lost (from the frames' own numbering, never below zero), gaps, resolution
changes, bitrate, keyframe requests, the A/V offset; and its writer, which stores a part only
when it changed and last of all its end."""

from __future__ import annotations

import asyncio
import fractions
import json
import types
from typing import Any

import av
import numpy as np
import pytest

from chalicelib import recording_report
from recorder_container.encoded import EncodedVideo
from recorder_container.room import Received
from recorder_container.stream_report import BITRATE_STEP_S, MAX_POINTS, PartHeader, ReportWriter, StreamReport
from tests.support.synthetic import h264_frames, pcm_frames

T0 = 1_768_908_622.0
SOURCE = object()


def feed(report: StreamReport, kind: str, frames: Any, rate: float, start: float = T0, user: str = "alice",
         source: object = SOURCE) -> None:
    """Each frame arriving at its own time (pts / rate after `start`)."""
    for frame in frames:
        report.frame(Received(user, "1" if kind == "video" else "0", frame, start + frame.pts / rate, source),
                     "main", kind)


def only(report: StreamReport, kind: str = "video") -> dict[str, Any]:
    found = [s for s in report.streams() if s["Kind"] == kind]
    assert len(found) == 1
    return found[0]


def test_h264_losses_are_gaps_in_frame_num_and_a_repeated_frame_is_no_loss() -> None:
    frames = list(h264_frames(4.0, keyint=15))  # 60 frames, an IDR every 15
    kept = [f for i, f in enumerate(frames) if i not in (3, 4, 20)]  # three lost inside their GOPs
    kept.insert(10, kept[9])  # a frame that came twice (a retransmission the jitter buffer let through)
    report = StreamReport()
    feed(report, "video", kept, 90000)
    video = only(report)
    assert video["FramesReceived"] == len(kept) and video["FramesLost"] == 3
    assert video["Resolutions"] == [{"At": round(T0 * 1000), "Width": 320, "Height": 180}]
    assert video["Bytes"] == sum(len(f.data) for f in kept)
    assert video["DurationS"] == pytest.approx(59 / 15, abs=0.002)
    assert video["Gaps"] == [] and video["Left"] is None and video["Joined"] == round(T0 * 1000)


def test_bitrate_points_every_few_seconds_and_the_average() -> None:
    report = StreamReport()
    feed(report, "video", (EncodedVideo(b"\x01" * 1250, i * 9000) for i in range(121)), 90000)  # 10 kB/s, 12 s
    video = only(report)
    assert [p[0] for p in video["Bitrate"]] == [round(T0 * 1000), round((T0 + BITRATE_STEP_S) * 1000)]
    assert all(p[1] == pytest.approx(100.0, rel=0.05) for p in video["Bitrate"])  # 1250 B every 0.1 s
    assert video["BitrateKbps"] == pytest.approx(101, rel=0.02)
    report.close(T0 + 12.0)
    assert len(only(report)["Bitrate"]) == 3  # the last, shorter window counts at the end


def test_a_long_recording_keeps_its_bitrate_series_bounded() -> None:
    report = StreamReport()
    steps = int(MAX_POINTS * 1.5)
    feed(report, "video", (EncodedVideo(b"\x01" * 100, int(i * BITRATE_STEP_S * 90000)) for i in range(steps)), 90000)
    points = only(report)["Bitrate"]
    assert MAX_POINTS / 2 <= len(points) <= MAX_POINTS
    assert points[1][0] - points[0][0] == 2 * BITRATE_STEP_S * 1000  # neighbours averaged


def test_resolution_changes_of_h264_and_of_decoded_pictures() -> None:
    report = StreamReport()
    first = list(h264_frames(1.0, keyint=15))
    feed(report, "video", first, 90000)
    feed(report, "video", h264_frames(1.0, keyint=15, width=640, height=360), 90000, start=T0 + 1.0)
    assert [(r["Width"], r["Height"]) for r in only(report)["Resolutions"]] == [(320, 180), (640, 360)]

    decoded = StreamReport()
    pictures = []
    for i in [n for n in range(30) if n not in (10, 11)]:  # two pictures that never came
        picture = av.VideoFrame.from_ndarray(np.zeros((360, 640, 3), np.uint8), format="rgb24")
        picture.pts, picture.time_base = i * 6000, fractions.Fraction(1, 90000)
        pictures.append(picture)
    feed(decoded, "video", pictures, 90000)
    video = only(decoded)
    assert video["Resolutions"] == [{"At": round(T0 * 1000), "Width": 640, "Height": 360}]
    assert video["FramesLost"] == 2 and video["BitrateKbps"] is None and video["Bytes"] is None


def test_audio_losses_but_not_dtx_silences() -> None:
    report = StreamReport()
    feed(report, "audio", (f for i, f in enumerate(pcm_frames(3.0)) if i not in (50, 51, 52, 100)), 48000)
    audio = only(report, "audio")
    assert audio["FramesLost"] == 4 and audio["FramesReceived"] == 146 and audio["BitrateKbps"] is None

    dtx = StreamReport()  # 0.5 s without frames: a silence the publisher did not send
    feed(dtx, "audio", pcm_frames(3.0, skip=(1.0, 1.5)), 48000)
    assert only(dtx, "audio")["FramesLost"] == 0


def test_gaps_while_subscribed_but_not_while_the_publisher_was_away() -> None:
    report = StreamReport()
    feed(report, "audio", pcm_frames(2.0), 48000)
    feed(report, "audio", pcm_frames(2.0), 48000, start=T0 + 4.0, source=object())  # 2 s without, resubscribed
    report.follow(set(), T0 + 6.5)  # she left
    away = only(report, "audio")
    assert away["Left"] == round((T0 + 6.5) * 1000)
    feed(report, "audio", pcm_frames(1.0), 48000, start=T0 + 20.0, source=object())  # and came back
    audio = only(report, "audio")
    assert audio["Gaps"] == [{"At": round((T0 + 1.98) * 1000), "DurationMs": 2020}]
    assert audio["Left"] is None and audio["Joined"] == round(T0 * 1000)
    assert audio["DurationS"] == pytest.approx(5.98 + 0.98, abs=0.002)  # her time away is not recorded time
    assert audio["FramesLost"] == 0  # each subscription numbers its frames afresh

    report.close(T0 + 24.0)  # silent for 3 s before the end: a gap too
    assert only(report, "audio")["Gaps"][-1] == {"At": round((T0 + 20.98) * 1000), "DurationMs": 3020}


def test_keyframe_requests_and_the_av_offset() -> None:
    report = StreamReport()
    report.keyframe_requested("alice", "main")  # before her first frame
    feed(report, "video", h264_frames(1.0), 90000)
    feed(report, "audio", pcm_frames(1.0), 48000)
    report.keyframe_requested("alice", "main")
    report.keyframe_requested("alice", "aux")
    assert only(report)["KeyframeRequests"] == 2 and only(report, "audio")["KeyframeRequests"] == 0
    assert only(report)["AvOffsetMs"] is None  # no frame came with its place on the clock


class MemoryBucket:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, key: str, body: bytes, content_type: str) -> None:
        assert content_type == "application/json"
        self.objects[key] = body
        self.puts += 1


def test_the_writer_stores_a_part_when_it_changed_and_at_the_end() -> None:
    bucket = MemoryBucket()
    now = [T0]
    report = StreamReport()
    header = PartHeader("Ab+c.", 1400000001, "8848", ha=1, shard=2)

    async def scenario() -> None:
        writer = ReportWriter(report, bucket, header, lambda: now[0], interval_s=0.05)  # type: ignore[arg-type]
        writer.start()
        await asyncio.sleep(0.2)
        assert bucket.puts == 1  # nothing changed after the first
        feed(report, "audio", pcm_frames(1.0), 48000)
        now[0] += 1
        await asyncio.sleep(0.2)
        assert bucket.puts == 2
        now[0] += 1
        await writer.finish(task_ended=False)
        await writer.finish(task_ended=True)  # once only

    asyncio.run(scenario())
    assert bucket.puts == 3 and list(bucket.objects) == [recording_report.part_key("Ab+c.", 1, 2)]
    part = json.loads(bucket.objects["reports/Ab+c./ha1-shard2.json"])
    assert {k: part[k] for k in ("TaskId", "SdkAppId", "RoomId", "Ha", "Shard", "StartedAt", "EndedAt",
                                 "TaskEnded")} == {
        "TaskId": "Ab+c.", "SdkAppId": 1400000001, "RoomId": "8848", "Ha": 1, "Shard": 2,
        "StartedAt": round(T0 * 1000), "EndedAt": round((T0 + 2) * 1000), "TaskEnded": False}
    assert [s["FramesReceived"] for s in part["Streams"]] == [50]


def test_a_frame_that_cannot_be_read_is_still_the_recordings() -> None:
    report = StreamReport()
    broken = types.SimpleNamespace(sample_rate=48000, pts="?")  # no time base, a pts that is no number
    report.frame(Received("alice", "0", broken, T0, SOURCE), "main", "audio")  # logged, not raised
    assert only(report, "audio")["FramesReceived"] == 1


def test_the_av_offset_is_what_the_receive_path_put_between_a_users_sound_and_picture() -> None:
    report = StreamReport()
    for i in range(30):  # a flash and a beep taken together every 100 ms; the picture comes out 50 ms later
        taken = T0 + i * 0.1
        report.frame(Received("alice", "0", next(iter(pcm_frames(0.02))), taken + 0.08, SOURCE, taken), "main",
                     "audio")
        report.frame(Received("alice", "1", next(iter(h264_frames(0.1))), taken + 0.13, SOURCE, taken), "main",
                     "video")
    assert only(report)["AvOffsetMs"] == only(report, "audio")["AvOffsetMs"] == pytest.approx(-50, abs=0.5)
