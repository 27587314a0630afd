"""Writes one recorded stream (a user's audio, video, or both with AvMerge) as MPEG-TS
segments, in a thread of its own so codec work never blocks the event loop.

Video is remuxed as it arrived (H.264 access units; VP8 is transcoded to H.264). Audio is
re-encoded to AAC on a continuous sample timeline: gaps inside a source (Opus DTX, loss)
become silence, so audio never drifts against video. Segments start on keyframes once the
target length is reached; a keyframe is requested shortly before. A lost video frame
(frame_num gap) drops everything to the next keyframe and requests one. A resolution change
or a new source (the publisher came back) starts a new segment, and so does a timestamp that
leaps ahead of its arrival (the source is anchored again on the arrival clock: no hole).

The queue in front of the thread is bounded in time (backlog.py): a writer that falls behind
sheds video, never the producer's time, so memory stays bounded.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from chalicelib.adts import adts_header
from recorder_container import h264
from recorder_container.aac_track import AAC_FRAME, AacTrack
from recorder_container.backlog import Backlog
from recorder_container.encoded import EncodedVideo
from recorder_container.sender_clock import HOLD_S
from recorder_container.timeline import SourceClock

log = logging.getLogger(__name__)

VIDEO_RATE = 90000
OUT_BASE = VIDEO_RATE  # output timestamps start at 1 s: AAC priming never goes negative
KEYFRAME_LEAD_S = 0.3  # ask for a keyframe this long before a segment is due (it takes ~RTT + a frame)
KEYFRAME_RETRY_S = 1.0
AUDIO_ONLY_CUT_S = 2.0  # AvMerge: without video for this long, audio may cut segments
MAX_TRANSCODE_SIZE = (1920, 1080)  # larger pictures are scaled down before x264
MAX_TRANSCODE_FPS = 60  # TRTC's highest frame rate: a publisher sending more has frames left out
MAX_AHEAD_S = 2.0  # a sample cannot arrive before it was made: further ahead, its timestamp jumped
TS_PACKET = 188
# FFmpeg (ffprobe, PyAV) guesses a file's format from its bytes, and trusts MPEG-TS only past
# ten 204-byte probe blocks: a shorter segment (one AAC frame, when a stop comes just after a
# cut) reads as MPEG-PS. Short files are padded with null packets (PID 0x1FFF) up to this.
MIN_TS_PACKETS = 12
NULL_PACKET = bytes([0x47, 0x1F, 0xFF, 0x10]) + b"\xff" * (TS_PACKET - 4)

@dataclass(frozen=True)
class SegmentDone:
    """A finished TS file, ready to upload."""

    path: Path
    start_ms: int  # wall-clock time of its first sample
    duration_ms: int
    size: int
    width: int = 0
    height: int = 0
    discontinuity: bool = False


@dataclass(frozen=True)
class WriterSpec:
    """What one stream writer makes: which kinds, where, how long its segments, what sound."""

    name: str
    audio: bool
    video: bool
    work_dir: Path
    segment_s: float  # the recorder's setting (RecorderSettings.segment_s)
    audio_channels: int = 1
    audio_bitrate: int = 48000
    audio_rate: int = 48000  # AAC sample rate of the output
    audio_latency_s: float = HOLD_S["audio"]  # how long the receiver held audio before handing it out


@dataclass
class _Segment:
    container: Any
    path: Path
    start_ts: int  # output timestamp (1/90000) of the first sample
    start_wall: float
    video_stream: Any = None
    audio_stream: Any = None
    end_ts: int = 0
    width: int = 0
    height: int = 0
    discontinuity: bool = False
    keyframe_asked: bool = False
    has_packets: bool = False
    video_packets: int = 0


@dataclass
class _Stats:
    video_frames: int = 0
    video_waiting: int = 0  # before a source's first keyframe (nothing is lost: it cannot be decoded yet)
    video_dropped: int = 0  # after a lost frame up to the next keyframe, and while the writer was behind
    audio_frames: int = 0
    audio_dropped: int = 0  # only by a writer stuck for MAX_AUDIO_LAG_S
    silence_samples: int = 0
    segments: int = 0


def transcode_size(width: int, height: int) -> tuple[int, int]:
    """The size a decoded picture is transcoded at: its own, within MAX_TRANSCODE_SIZE either
    way round (a publisher chooses its resolution; x264 on one core does not keep up beyond
    1080p), in even numbers as yuv420p needs."""
    long_side, short_side = MAX_TRANSCODE_SIZE
    limit_w, limit_h = (long_side, short_side) if width >= height else (short_side, long_side)
    scale = min(1.0, limit_w / max(width, 1), limit_h / max(height, 1))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


@dataclass(frozen=True)
class Resume:
    """Where a stream's previous writer stopped: the next one keeps its timeline and file numbers."""

    origin: float
    seq: int


@dataclass
class StreamWriter:
    """Consumes frames (from any thread) and writes segments in its own thread."""

    spec: WriterSpec
    on_segment: Callable[[SegmentDone], None]
    on_first_sample: Callable[[float], None]
    request_keyframe: Callable[[], None]
    stats: _Stats = field(default_factory=_Stats)
    resume: Resume | None = None  # the stream had a writer before this one
    clock: Callable[[], float] = time.monotonic  # measures how far behind the writer is

    def __post_init__(self) -> None:
        self._backlog = Backlog(self.clock, self.request_keyframe)
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.spec.name}", daemon=True)
        self._origin: float | None = self.resume.origin if self.resume else None
        self._segment: _Segment | None = None
        self._seq = self.resume.seq if self.resume else 0
        self._pending_discontinuity = self.resume is not None
        self._warned_behind = False
        # video
        self._vclocks: dict[Any, SourceClock] = {}
        self._vsource: Any = None
        self._sps: h264.Sps | None = None
        self._size = (0, 0)
        self._last_frame_num: int | None = None
        self._want_keyframe = True
        self._source_started = False  # a keyframe of the current source was written
        self._last_ask = -1e9
        self._last_video_ts: int | None = None
        self._video_step = VIDEO_RATE // 15
        self._transcoder: Any = None
        self._last_transcoded: int | None = None  # pts of the last picture given to the transcoder
        self._capped_rate = False
        self._force_key = False
        # audio
        self._aclocks: dict[Any, SourceClock] = {}
        self._asource: Any = None
        self._aac = AacTrack(self.spec.audio_rate, self.spec.audio_channels, self.spec.audio_bitrate)
        self._audio_start_ts = 0  # first real sample of the current encoder (AAC priming comes before it)
        self._thread.start()

    # -- producer side (any thread) ----------------------------------------------------

    def video(self, frame: Any, arrival: float, source: Any, media_time: float | None = None) -> None:
        self._backlog.put("video", frame, arrival, source, media_time)

    def audio(self, frame: Any, arrival: float, source: Any, media_time: float | None = None) -> None:
        self._backlog.put("audio", frame, arrival, source, media_time)

    def ended(self, source: Any) -> None:
        """`source` delivers no more frames: its clock can go."""
        self._backlog.put_control("ended", source)

    def queued(self, kind: str) -> int:
        """Frames of `kind` ("video", "audio") waiting to be written."""
        return self._backlog.queued(kind)

    def finish(self) -> None:
        """Close the open segment and stop the thread; blocks until written. Frames handed in
        later are ignored."""
        self._backlog.put_control("end")
        self._thread.join()

    def resume_point(self) -> Resume | None:
        """Where a next writer of the same stream takes over (after `finish`)."""
        return Resume(self._origin, self._seq) if self._origin is not None else None

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            kind, frame, arrival, source, media_time = self._backlog.get()
            if kind == "end":
                break
            try:
                if kind == "video":
                    self._on_video(frame, arrival, source, media_time)
                elif kind == "audio":
                    self._on_audio(frame, arrival, source, media_time)
                elif kind == "ended":
                    self._vclocks.pop(source, None)
                    self._aclocks.pop(source, None)
                else:
                    self._on_dropped(*frame)
            except Exception:  # one bad frame must not end the recording
                log.exception("writer %s: frame dropped", self.spec.name)
        try:
            self._mux_audio(self._aac.finish())
        except Exception:
            log.exception("writer %s: the last audio could not be written", self.spec.name)
        try:
            self._close_segment()
        except Exception:
            log.exception("writer %s: closing the last segment failed", self.spec.name)
        # a finished writer may be kept for its stats: let go of its codec and the tracks
        self._transcoder = self._vsource = self._asource = None
        self._vclocks.clear()
        self._aclocks.clear()

    def _on_dropped(self, video: int, audio: int) -> None:
        self.stats.video_dropped += video
        self.stats.audio_dropped += audio
        if audio:
            log.warning("writer %s is stuck: %d audio frames dropped", self.spec.name, audio)
        elif not self._warned_behind:
            self._warned_behind = True
            log.warning("writer %s fell behind: dropping video to keep up", self.spec.name)

    def _wall(self, clocks: dict[Any, SourceClock], source: Any, pts: int, arrival: float,
              media_time: float | None, new_clock: Callable[[], SourceClock]) -> tuple[float, bool]:
        """Wall-clock time of a source's sample, and whether its clock was anchored again."""
        clock = clocks.get(source)
        if clock is None:
            clock = clocks[source] = new_clock()
        wall, jumped = clock.wall(pts, arrival, media_time)
        if wall - arrival > MAX_AHEAD_S:  # the timestamps leapt ahead of time: take the arrival's word
            clock = clocks[source] = new_clock()
            wall, _ = clock.wall(pts, arrival)
            jumped = True
        return wall, jumped

    def _out_ts(self, wall: float) -> int:
        if self._origin is None:
            self._origin = wall
            self.on_first_sample(wall)
        return OUT_BASE + round((wall - self._origin) * VIDEO_RATE)

    def _open_segment(self, ts: int) -> _Segment:
        assert self._origin is not None
        self._seq += 1
        path = self.spec.work_dir / f"{self.spec.name}.{self._seq:06d}.ts"
        # a recording that closed removes its work directory once empty: another of the same task
        # (ha0 draining beside ha1) may have removed this one
        self.spec.work_dir.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w", format="mpegts")
        seg = _Segment(container, path, ts, self._origin + (ts - OUT_BASE) / VIDEO_RATE,
                       discontinuity=self._pending_discontinuity, width=self._size[0], height=self._size[1])
        if self.spec.video:
            seg.video_stream = container.add_mux_stream("h264")
        if self.spec.audio:
            seg.audio_stream = container.add_mux_stream("aac", rate=self.spec.audio_rate)
        self._pending_discontinuity = False
        self._segment = seg
        return seg

    def _close_segment(self) -> None:
        seg = self._segment
        self._segment = None
        if seg is None:
            return
        seg.container.close()
        if not seg.has_packets:
            seg.path.unlink(missing_ok=True)
            return
        pad_to_probe(seg.path)
        self.stats.segments += 1
        self.on_segment(SegmentDone(
            path=seg.path, start_ms=round(seg.start_wall * 1000), duration_ms=round((seg.end_ts - seg.start_ts) / 90),
            size=seg.path.stat().st_size, width=seg.width, height=seg.height, discontinuity=seg.discontinuity))

    def _cut(self, ts: int, discontinuity: bool = False) -> _Segment:
        self._close_segment()
        self._pending_discontinuity = self._pending_discontinuity or discontinuity
        return self._open_segment(ts)

    def _ask_keyframe(self, now: float) -> None:
        if now - self._last_ask >= KEYFRAME_RETRY_S:
            self._last_ask = now
            self._force_key = True  # a transcoded source makes its own keyframe
            self.request_keyframe()

    # -- video -------------------------------------------------------------------------

    def _encoded(self, frame: Any) -> EncodedVideo | None:
        if isinstance(frame, EncodedVideo):
            return frame
        if self._last_transcoded is not None and frame.pts - self._last_transcoded < VIDEO_RATE // MAX_TRANSCODE_FPS:
            if not self._capped_rate:
                self._capped_rate = True
                log.warning("writer %s: the publisher sends over %d frames a second: the extra frames are left out",
                            self.spec.name, MAX_TRANSCODE_FPS)
            return None
        self._last_transcoded = frame.pts
        if self._transcoder is None:
            width, height = transcode_size(frame.width, frame.height)
            log.warning("writer %s: the publisher sends %s, not H.264: transcoding it to H.264 (%dx%d%s)",
                        self.spec.name, "VP8", width, height,
                        "" if (width, height) == (frame.width, frame.height) else
                        f", scaled down from {frame.width}x{frame.height}")
            enc = av.CodecContext.create("libx264", "w")
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.time_base = fractions.Fraction(1, VIDEO_RATE)
            enc.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline",
                           "x264-params": "keyint=600:scenecut=0:annexb=1:repeat-headers=1"}
            enc.open()
            self._transcoder = enc
        picture = frame.reformat(width=self._transcoder.width, height=self._transcoder.height, format="yuv420p")
        picture.pts = frame.pts
        picture.time_base = fractions.Fraction(1, VIDEO_RATE)
        if self._force_key:
            picture.pict_type = av.video.frame.PictureType.I
            self._force_key = False
        packets = self._transcoder.encode(picture)
        if not packets:
            return None
        return EncodedVideo(b"".join(bytes(p) for p in packets), int(frame.pts))

    def _on_video(self, frame: Any, arrival: float, source: Any, media_time: float | None) -> None:
        encoded = self._encoded(frame)
        if encoded is None:
            return
        wall, jumped = self._wall(self._vclocks, source, encoded.pts, arrival, media_time,
                                  lambda: SourceClock(VIDEO_RATE))
        new_source = source is not self._vsource
        if new_source or jumped:
            self._vsource = source
            self._want_keyframe = True
            self._source_started = False
            self._last_frame_num = None
        au = h264.inspect(encoded.data, self._sps)
        if au.sps is not None:
            self._sps = au.sps
        self.stats.video_frames += 1
        if not self._admit(au, arrival):
            return
        ts = self._out_ts(wall)
        if self._last_video_ts is not None and ts <= self._last_video_ts:
            ts = self._last_video_ts + 1  # a sender report placed it before the last picture: keep the order
        seg = self._video_segment(ts, au.keyframe, new_source or jumped)
        if seg is not None:
            self._mux_video(seg, encoded, ts, au.keyframe, arrival)

    def _admit(self, au: h264.AccessUnit, arrival: float) -> bool:
        """Whether a frame can be written: after a loss, or before a source's first keyframe,
        nothing is until the next keyframe (asked for meanwhile)."""
        if not au.keyframe and self._frame_lost(au):
            self._want_keyframe = True
        if self._want_keyframe and not au.keyframe:
            if self._source_started:
                self.stats.video_dropped += 1
            else:
                self.stats.video_waiting += 1
            self._ask_keyframe(arrival)
            return False
        self._want_keyframe = False
        self._source_started = True
        self._last_frame_num = au.frame_num
        return True

    def _video_segment(self, ts: int, keyframe: bool, new_source: bool) -> _Segment | None:
        """The segment a picture at `ts` goes in: a keyframe cuts a new one when the segment is
        due, the picture size changed or a new source starts."""
        seg = self._segment
        if not keyframe:
            return seg
        size = (self._sps.width, self._sps.height) if self._sps else self._size
        resized = size != self._size
        self._size = size
        elapsed = ts - seg.start_ts if seg is not None else 0
        # the keyframe asked for shortly before the target cuts; unasked ones from the target on
        due = seg is not None and (elapsed >= (self.spec.segment_s - 0.05) * VIDEO_RATE or (
            seg.keyframe_asked and elapsed >= (self.spec.segment_s - KEYFRAME_LEAD_S) * VIDEO_RATE))
        if seg is not None and seg.video_packets == 0 and not due:
            seg.width, seg.height = size  # audio opened this segment: its first picture is here
        elif seg is None or due or resized or new_source:
            seg = self._cut(ts, discontinuity=new_source and seg is not None)
            seg.width, seg.height = size
        return seg

    def _mux_video(self, seg: _Segment, encoded: EncodedVideo, ts: int, keyframe: bool, arrival: float) -> None:
        if self._last_video_ts is not None and 0 < ts - self._last_video_ts < VIDEO_RATE:
            self._video_step = ts - self._last_video_ts
        self._last_video_ts = ts
        packet = av.Packet(encoded.data)
        packet.pts = packet.dts = ts
        packet.time_base = fractions.Fraction(1, VIDEO_RATE)
        packet.stream = seg.video_stream
        packet.is_keyframe = keyframe
        seg.container.mux(packet)
        seg.has_packets = True
        seg.video_packets += 1
        seg.end_ts = max(seg.end_ts, ts + self._video_step)
        elapsed = ts - seg.start_ts
        if elapsed >= (self.spec.segment_s - KEYFRAME_LEAD_S) * VIDEO_RATE:
            if not seg.keyframe_asked or elapsed >= self.spec.segment_s * VIDEO_RATE:  # ask again when late
                seg.keyframe_asked = True
                self._ask_keyframe(arrival)

    def _frame_lost(self, au: h264.AccessUnit) -> bool:
        if self._sps is None or au.frame_num is None or self._last_frame_num is None:
            return False
        modulus = 1 << self._sps.log2_max_frame_num
        return au.frame_num not in (self._last_frame_num, (self._last_frame_num + 1) % modulus)

    # -- audio -------------------------------------------------------------------------

    def _on_audio(self, frame: Any, arrival: float, source: Any, media_time: float | None) -> None:
        wall, jumped = self._wall(self._aclocks, source, int(frame.pts), arrival, media_time,
                                  lambda: SourceClock(frame.sample_rate, self.spec.audio_latency_s))
        new_source = source is not self._asource
        self.stats.audio_frames += 1
        ts = self._out_ts(wall)
        pos = round((ts - OUT_BASE) * self.spec.audio_rate / VIDEO_RATE)
        if not self._aac.active or new_source or jumped:
            if self._aac.active:
                self._mux_audio(self._aac.finish())
                if not self.spec.video:  # a video stream decides its own cuts
                    self._close_segment()
                self._pending_discontinuity = True
            self._asource = source
            self._aac.start(pos)
            self._audio_start_ts = ts
        self._mux_audio(self._aac.add(frame, pos))
        self.stats.silence_samples = self._aac.silence_samples

    def _mux_audio(self, packets: list[Any]) -> None:
        for packet in packets:
            self._mux_audio_packet(packet)

    def _mux_audio_packet(self, packet: Any) -> None:
        ts = OUT_BASE + round(packet.pts * VIDEO_RATE / self.spec.audio_rate)
        seg = self._segment
        if seg is None or (not self.spec.video and ts - seg.start_ts >= self.spec.segment_s * VIDEO_RATE) or (
                self.spec.video and self._audio_may_cut(seg, ts)):
            # a file is named by its first real sample, not by the encoder's priming before it
            seg = self._cut(max(ts, self._audio_start_ts))
        if seg.audio_stream is None:
            return
        data = bytes(packet)
        out = av.Packet(adts_header(len(data), self.spec.audio_rate, self.spec.audio_channels) + data)
        out.pts = out.dts = packet.pts + round((OUT_BASE * self.spec.audio_rate) / VIDEO_RATE)
        out.time_base = fractions.Fraction(1, self.spec.audio_rate)
        out.stream = seg.audio_stream
        seg.container.mux(out)
        seg.has_packets = True
        seg.end_ts = max(seg.end_ts, ts + round(AAC_FRAME * VIDEO_RATE / self.spec.audio_rate))

    def _audio_may_cut(self, seg: _Segment, ts: int) -> bool:
        """AvMerge: when video has paused, audio alone cuts segments on time."""
        video_quiet = self._last_video_ts is None or ts - self._last_video_ts > AUDIO_ONLY_CUT_S * VIDEO_RATE
        return video_quiet and ts - seg.start_ts >= self.spec.segment_s * VIDEO_RATE


def pad_to_probe(path: Path) -> None:
    """Append null packets to a TS file too short for FFmpeg to recognise as TS."""
    missing = MIN_TS_PACKETS - path.stat().st_size // TS_PACKET
    if missing > 0:
        with path.open("ab") as f:
            f.write(NULL_PACKET * missing)
