"""The segment writer on synthetic media: keyframe-aligned segments near the target length,
exact remux of the video, audio kept on the clock through gaps, loss, resolution changes and
timestamp jumps, and a bounded queue when the writer falls behind."""

from __future__ import annotations

import fractions
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from recorder_container.backlog import MAX_AUDIO_LAG_S, MAX_VIDEO_LAG_S
from recorder_container.encoded import EncodedVideo
from recorder_container.hls_writer import SegmentDone, StreamWriter, WriterSpec
from tests.support.fakes import FakeClock
from tests.support.synthetic import h264_frames, pcm_frames

T0 = 1_795_000_000.0


class Collector:
    def __init__(self) -> None:
        self.segments: list[SegmentDone] = []
        self.first: list[float] = []
        self.keyframe_requests = 0
        self.lock = threading.Lock()

    def writer(self, tmp: Path, **spec: object) -> StreamWriter:
        defaults: dict[str, object] = {"name": "s", "audio": False, "video": True, "work_dir": tmp, "segment_s": 4.0}
        defaults.update(spec)
        return StreamWriter(WriterSpec(**defaults), self.segments.append, self.first.append, self._ask)  # type: ignore[arg-type]

    def _ask(self) -> None:
        with self.lock:
            self.keyframe_requests += 1


def decoded(paths: list[Path], kind: str) -> list[av.frame.Frame]:
    out = []
    for path in paths:
        with av.open(str(path)) as c:
            streams = [s for s in c.streams if s.type == kind]
            out += list(c.decode(*streams))
    return out


def test_video_segments_start_on_keyframes_and_keep_every_frame(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path)
    sent = list(h264_frames(13, keyint=15))  # a keyframe every second
    for f in sent:
        w.video(f, T0 + f.pts / 90000, "src")
    w.finish()
    assert col.first == [T0]
    assert [round(s.duration_ms / 1000) for s in col.segments] == [4, 4, 4, 1]
    assert [s.start_ms for s in col.segments] == [round((T0 + 4 * i) * 1000) for i in range(4)]
    for seg in col.segments:
        with av.open(str(seg.path)) as c:
            first = next(c.demux(c.streams.video[0]))
            assert first.is_keyframe
            assert c.streams.video[0].codec_context.name == "h264"
        assert (seg.width, seg.height) == (320, 180)
    packets = []
    for seg in col.segments:
        with av.open(str(seg.path)) as c:
            packets += [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    aud = b"\x00\x00\x00\x01\x09\xf0"  # the TS muxer puts an access unit delimiter first
    assert [p.removeprefix(aud) for p in packets] == [f.data for f in sent]  # remuxed, not re-encoded


def test_lost_frame_drops_to_the_next_keyframe(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, segment_s=30.0)
    frames = list(h264_frames(4, keyint=15))
    lost = 20  # a P-frame in the second GOP
    for i, f in enumerate(frames):
        if i != lost:
            w.video(f, T0 + f.pts / 90000, "src")
    w.finish()
    assert w.stats.video_dropped == 30 - lost - 1  # up to the keyframe at frame 30
    assert col.keyframe_requests >= 1
    assert len(decoded([s.path for s in col.segments], "video")) == len(frames) - 1 - w.stats.video_dropped


def test_resolution_change_starts_a_segment(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, segment_s=30.0)
    for f in h264_frames(2, width=320, height=180):
        w.video(f, T0 + f.pts / 90000, "src")
    for f in h264_frames(2, width=640, height=360):
        w.video(EncodedVideo(f.data, f.pts + 2 * 90000), T0 + 2 + f.pts / 90000, "src")
    w.finish()
    assert [(s.width, s.height) for s in col.segments] == [(320, 180), (640, 360)]
    assert decoded([col.segments[1].path], "video")[0].width == 640


def test_audio_gaps_become_silence_and_segments_follow_the_clock(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, audio=True, video=False)
    for f in pcm_frames(10, skip=(3.0, 5.0)):  # 2 s of DTX
        w.audio(f, T0 + f.pts / 48000 + 0.08, "src")
    w.finish()
    assert [round(s.duration_ms / 1000) for s in col.segments] == [4, 4, 2]
    samples = sum(f.samples for f in decoded([s.path for s in col.segments], "audio"))
    assert abs(samples - 10 * 48000) <= 2048  # continuous: the gap was filled
    assert w.stats.silence_samples == pytest.approx(2 * 48000, abs=960)
    with av.open(str(col.segments[0].path)) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.name, a.codec_context.sample_rate, a.codec_context.channels) == ("aac", 48000, 1)


def test_a_segment_cut_short_is_still_recognised_as_mpeg_ts(tmp_path: Path) -> None:
    """A stop a few frames after a cut leaves a segment of one AAC frame. ffprobe and PyAV
    guess a file's format from its bytes; a TS file that short reads as MPEG-PS ("mp2,
    Header missing") unless the writer pads it to a length the TS probe trusts."""
    col = Collector()
    w = col.writer(tmp_path, audio=True, video=False)
    for f in pcm_frames(4.06):  # the second segment gets ~60 ms
        w.audio(f, T0 + f.pts / 48000 + 0.08, "src")
    w.finish()
    assert len(col.segments) == 2 and col.segments[1].duration_ms < 200
    short = col.segments[1]
    assert short.size == short.path.stat().st_size and short.size % 188 == 0
    with av.open(str(short.path)) as c:  # no format given: detected, as a user's ffprobe does
        assert c.format.name == "mpegts"
        assert c.streams.audio[0].codec_context.name == "aac"
        assert sum(f.samples for f in c.decode(audio=0)) >= 1024


def test_av_merge_writes_both_into_one_stream(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, audio=True, video=True, segment_s=3.0)
    video = list(h264_frames(7, keyint=15))
    audio = list(pcm_frames(7))
    events = sorted([(f.pts / 90000, "v", f) for f in video] + [(f.pts / 48000, "a", f) for f in audio],
                    key=lambda e: e[0])
    for t, kind, f in events:
        (w.video if kind == "v" else w.audio)(f, T0 + t + (0.08 if kind == "a" else 0), kind)
    w.finish()
    assert len(col.segments) == 3
    for seg in col.segments:
        with av.open(str(seg.path)) as c:
            assert {s.type for s in c.streams} == {"audio", "video"}
    assert abs(col.segments[0].start_ms - round(T0 * 1000)) <= 1


def test_a_new_source_starts_a_new_segment(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, segment_s=30.0)
    for f in h264_frames(2):
        w.video(f, T0 + f.pts / 90000, "first")
    for f in h264_frames(2):  # the user came back 10 s later; a new track restarts its timestamps
        w.video(f, T0 + 12 + f.pts / 90000, "second")
    w.finish()
    assert len(col.segments) == 2 and col.segments[1].discontinuity
    assert col.segments[1].start_ms == round((T0 + 12) * 1000)


def video_times(paths: list[Path]) -> list[float]:
    """Presentation times (s) of every picture in the files, in order."""
    return [float(f.pts * f.time_base) for f in decoded(paths, "video")]


def test_a_timestamp_jump_ahead_of_arrival_is_re_anchored_not_a_hole(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, segment_s=30.0)
    for f in h264_frames(4, keyint=15):
        jump = 20 * 90000 if f.pts >= 2 * 90000 else 0  # the sender's timestamps leap 20 s; time does not
        w.video(EncodedVideo(f.data, f.pts + jump), T0 + f.pts / 90000, "src")
    w.finish()
    times = video_times([s.path for s in col.segments])
    assert len(times) == 60
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 0.2  # no 20 s hole in the picture
    end = col.segments[-1].start_ms + col.segments[-1].duration_ms
    assert abs(end - round((T0 + 4) * 1000)) <= 200  # the recording ends when the sending did


def test_an_audio_timestamp_jump_is_re_anchored_not_filled_with_silence(tmp_path: Path) -> None:
    col = Collector()
    w = col.writer(tmp_path, audio=True, video=False)
    for f in pcm_frames(6):
        arrival = T0 + f.pts / 48000 + 0.08
        if f.pts >= 3 * 48000:
            f.pts += 10 * 48000  # 10 s ahead of the sound's real time
        w.audio(f, arrival, "src")
    w.finish()
    samples = sum(f.samples for f in decoded([s.path for s in col.segments], "audio"))
    assert abs(samples - 6 * 48000) <= 3 * 1024  # 6 s of sound, not 16
    assert w.stats.silence_samples < 48000


class Stalled:
    """A writer whose thread is stuck on its first sample until `release`, on a clock the test moves."""

    def __init__(self, tmp: Path, **spec: object) -> None:
        self.col = Collector()
        self.clock = FakeClock(0.0)
        self._go = threading.Event()
        defaults: dict[str, object] = {"name": "s", "audio": True, "video": True, "work_dir": tmp, "segment_s": 30.0}
        defaults.update(spec)
        self.writer = StreamWriter(WriterSpec(**defaults), self.col.segments.append,  # type: ignore[arg-type]
                                   lambda _wall: self._go.wait(10), self.col._ask, clock=self.clock)
        self.deepest = {"video": 0, "audio": 0}

    def feed(self, events: list[tuple[float, str, object]], keeping_up: bool = False) -> None:
        """Hand in (time, kind, frame) as if each arrived at its time; `keeping_up`: as if the
        writer took each at once (the test's clock stands still, so nothing waits on it)."""
        for t, kind, frame in events:
            self.clock.now = self.clock.now if keeping_up else t
            (self.writer.video if kind == "video" else self.writer.audio)(frame, T0 + t, kind)
            self.deepest[kind] = max(self.deepest[kind], self.writer.queued(kind))

    def release(self) -> None:
        """Unstick the writer and let it write what it holds."""
        self._go.set()
        deadline = time.monotonic() + 10
        while self.writer.queued("video") or self.writer.queued("audio"):
            assert time.monotonic() < deadline, "the writer never caught up"
            time.sleep(0.01)


def av_events(seconds: float, fps: int, start: float = 0.0) -> list[tuple[float, str, object]]:
    video = [(f.pts / 90000, "video", f) for f in h264_frames(seconds, fps=fps, keyint=2 * fps)]
    audio = [(f.pts / 48000, "audio", f) for f in pcm_frames(seconds)]
    return [e for e in sorted(video + audio, key=lambda e: e[0]) if e[0] >= start]


def test_a_writer_that_falls_behind_keeps_its_queue_bounded_and_restarts_on_a_keyframe(tmp_path: Path) -> None:
    fps = 30
    stalled = Stalled(tmp_path)
    events = av_events(6, fps)
    stalled.feed([e for e in events if e[0] < 4.0])  # 4 s while the writer is stuck
    assert stalled.deepest["video"] <= MAX_VIDEO_LAG_S * fps + 1  # a bounded queue, not 4 s of video
    assert stalled.col.keyframe_requests >= 2  # asked again while nothing could be taken
    stalled.release()
    stalled.feed([e for e in events if e[0] >= 4.0], keeping_up=True)  # a keyframe at 4 s: video goes on from it
    w = stalled.writer
    w.finish()
    paths = [s.path for s in stalled.col.segments]
    pictures = decoded(paths, "video")
    assert w.stats.video_dropped == 6 * fps - len(pictures)
    assert MAX_VIDEO_LAG_S * fps <= len(pictures) - 2 * fps <= MAX_VIDEO_LAG_S * fps + 2  # before the stall and from 4 s
    samples = sum(f.samples for f in decoded(paths, "audio"))
    assert abs(samples - 6 * 48000) <= 2048 and w.stats.audio_dropped == 0  # every bit of sound was kept


def raw_pictures(seconds: float, fps: int) -> Iterator[av.VideoFrame]:
    """Decoded pictures (as aiortc's VP8 decoder gives), 90 kHz pts."""
    for i in range(int(seconds * fps)):
        picture = av.VideoFrame.from_ndarray(np.full((36, 64, 3), i * 3 % 255, np.uint8), format="rgb24")
        picture = picture.reformat(format="yuv420p")
        picture.pts, picture.time_base = i * 90000 // fps, fractions.Fraction(1, 90000)
        yield picture


def test_a_transcoding_writer_that_falls_behind_drops_pictures_without_waiting_for_a_keyframe(tmp_path: Path) -> None:
    fps = 30
    stalled = Stalled(tmp_path, audio=False)
    events = [(p.pts / 90000, "video", p) for p in raw_pictures(4, fps)]
    stalled.feed(events[: 3 * fps])
    assert stalled.deepest["video"] <= MAX_VIDEO_LAG_S * fps + 1
    stalled.release()
    stalled.feed(events[3 * fps:], keeping_up=True)
    stalled.writer.finish()
    pictures = decoded([s.path for s in stalled.col.segments], "video")
    assert len(pictures) + stalled.writer.stats.video_dropped == 4 * fps
    assert len(pictures) >= MAX_VIDEO_LAG_S * fps + fps  # every picture after the stall, at once


def test_audio_of_a_stuck_writer_is_bounded_and_what_it_drops_is_counted(tmp_path: Path) -> None:
    stalled = Stalled(tmp_path, video=False)
    events = [(f.pts / 48000, "audio", f) for f in pcm_frames(14)]
    stalled.feed(events[: 12 * 50])  # 12 s stuck
    assert stalled.deepest["audio"] <= MAX_AUDIO_LAG_S * 50 + 1
    stalled.release()
    stalled.feed(events[12 * 50:], keeping_up=True)
    w = stalled.writer
    w.finish()
    assert w.stats.audio_frames + w.stats.audio_dropped == 14 * 50
    assert 50 <= w.stats.audio_dropped <= 2 * 50  # what came after 10 s of waiting, and only that
    assert w.stats.silence_samples == pytest.approx(w.stats.audio_dropped * 960, abs=960)  # the hole is silence
    samples = sum(f.samples for f in decoded([s.path for s in stalled.col.segments], "audio"))
    assert abs(samples - 14 * 48000) <= 2048  # on the clock: the sound after the hole is where it belongs


def test_transcode_size_keeps_the_picture_within_1080p_either_way_round() -> None:
    from recorder_container.hls_writer import transcode_size

    assert transcode_size(640, 360) == (640, 360)
    assert transcode_size(7680, 4320) == (1920, 1080)
    assert transcode_size(1080, 1920) == (1080, 1920)  # portrait: 1080p on its side is fine
    assert transcode_size(30000, 20) == (1920, 2)  # a sliver: the short side stays even and positive
    assert transcode_size(641, 361) == (640, 360)


def test_a_publisher_sending_4k_at_240_fps_is_transcoded_at_1080p_60(tmp_path: Path) -> None:
    """A publisher chooses its resolution and frame rate: what the transcoder takes is capped."""
    col = Collector()
    writer = col.writer(tmp_path)
    fps, seconds = 240, 0.5
    for i in range(int(seconds * fps)):
        picture = av.VideoFrame(3840, 2160, "yuv420p")
        picture.pts, picture.time_base = i * 90000 // fps, fractions.Fraction(1, 90000)
        writer.video(picture, T0 + i / fps, "vp8")
    writer.finish()
    pictures = decoded([s.path for s in col.segments], "video")
    assert {(p.width, p.height) for p in pictures} == {(1920, 1080)}
    assert 28 <= len(pictures) <= 31, len(pictures)  # 60 a second, not 240
