"""The segment writer on synthetic media: keyframe-aligned segments near the target length,
exact remux of the video, audio kept on the clock through gaps, loss and resolution changes."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import pytest

from recorder_container.encoded import EncodedVideo
from recorder_container.hls_writer import SegmentDone, StreamWriter, WriterSpec
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
