"""A recorder process's part of its task's recording report (chalicelib/recording_report.py):
collected per stream from the frames as they reach the recording's sink, written to the
internal bucket every INTERVAL_S when it changed and once more at the process's end.

Where each figure comes from:
- FramesReceived: frames handed to the sink (H.264 access units, decoded pictures, audio frames).
- FramesLost: distinct frames that never came, from the frames' own numbering — not from
  aiortc's receiver stats, whose packetsLost is expected minus received packets (NACK
  retransmissions and duplicates push it below zero) and counts packets, not frames.
  H.264 as sent: gaps in frame_num (exact for the frames others refer to, modulo MaxFrameNum).
  Audio: pts steps of more than one frame and less than DTX_STEP_S (Opus DTX sends a frame
  every 400 ms in silence, so longer steps may be no loss). Decoded video (mixed recordings):
  pts steps of several usual frame intervals — an estimate, which also counts frames the
  publisher's encoder skipped.
- KeyframeRequests: the PLIs the recording asked for (segment cuts, after a loss, a writer that
  fell behind). aiortc's own PLIs for the video it decodes are not seen here.
- BitrateKbps, Bitrate: bytes of H.264 access units, per BITRATE_STEP_S of arrival time; None
  (and no points) for what reaches the sink decoded (audio, mixed recordings' video).
- Resolutions: the SPS of H.264 (keyframes carry it); the size of decoded pictures.
- Gaps: no frame of a stream for more than GAP_S (arrival times) while it stayed subscribed.
- AvOffsetMs: of a user's main audio and video, how much later than the picture the receive
  path handed out the sound (negative: earlier), from each frame's arrival less its place on the
  clock (room.Received.media_time: its sender report's time) — what a recording placed by
  arrival would have put between them, and placing by the sender reports took out. None until
  both streams have frames placed so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from chalicelib import recording_report, retry
from chalicelib.naming import MAIN
from chalicelib.storage import Bucket
from recorder_container import h264
from recorder_container.encoded import EncodedVideo
from recorder_container.room import Received

log = logging.getLogger(__name__)

INTERVAL_S = 10.0  # a part is written this often (when it changed): a crash loses at most this much
PUT_TIMEOUT_S = 10.0  # the last write waits this long at most: the task's end must not wait on it
GAP_S = recording_report.GAP_MS / 1000
DTX_STEP_S = 0.4
BITRATE_STEP_S = 5.0
MAX_POINTS = 1440  # bitrate points kept (2 h at 5 s); beyond, neighbours are averaged (10 s, 20 s, …)
MAX_ENTRIES = 1000  # gaps and resolution changes kept per stream
VIDEO_RATE = 90000
HOLD_SMOOTHING = 0.05  # each frame moves a stream's smoothed hold this far towards its own

StreamId = tuple[str, str, str]  # UserId, MediaId, kind ("audio" | "video")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _seconds(frame: Any, default_rate: int) -> float | None:
    """A decoded frame's pts in seconds (None: it has none)."""
    if frame.pts is None:
        return None
    base = frame.time_base
    return float(frame.pts * base) if base else frame.pts / default_rate


@dataclass
class _Stream:
    """What is known of one stream so far. Owned by the event loop."""

    joined: float
    since: float  # the first frame since it was (again) subscribed
    last_at: float
    live: bool = True
    left: float | None = None
    duration: float = 0.0  # of the spells before `since`
    frames: int = 0
    lost: int = 0
    keyframe_requests: int = 0
    bytes: int | None = None  # None: decoded, sizes unknown
    points: list[list[float]] = field(default_factory=list)
    window_at: float | None = None
    window_bytes: int = 0
    window_s: float = BITRATE_STEP_S
    size: tuple[int, int] | None = None
    resolutions: list[dict[str, int]] = field(default_factory=list)
    gaps: list[dict[str, int]] = field(default_factory=list)
    source: object = None
    sps: h264.Sps | None = None
    frame_num: int | None = None
    last_pts: float | None = None
    steps: deque[float] = field(default_factory=lambda: deque(maxlen=15))
    hold: float | None = None  # how long frames took from their place on the clock to the sink (smoothed)

    def gap(self, start: float, end: float) -> None:
        if len(self.gaps) < MAX_ENTRIES:
            self.gaps.append({"At": _ms(start), "DurationMs": _ms(end - start)})

    def resolution(self, width: int, height: int, at: float) -> None:
        if (width, height) != self.size:
            self.size = (width, height)
            if len(self.resolutions) < MAX_ENTRIES:
                self.resolutions.append({"At": _ms(at), "Width": width, "Height": height})

    def count_bytes(self, size: int, at: float) -> None:
        self.bytes = (self.bytes or 0) + size
        if self.window_at is None:
            self.window_at = at
        elif at >= self.window_at + self.window_s:
            step = self.window_s
            self.close_window(step)
            self.window_at += step * ((at - self.window_at) // step)  # windows without a frame: no point
        self.window_bytes += size

    def close_window(self, length_s: float) -> None:
        assert self.window_at is not None
        self.points.append([_ms(self.window_at), round(self.window_bytes * 8 / 1000 / length_s, 1)])
        self.window_bytes = 0
        if len(self.points) > MAX_POINTS:
            pairs = zip(self.points[::2], self.points[1::2], strict=False)
            odd = [self.points[-1]] if len(self.points) % 2 else []
            self.points = [[a[0], round((a[1] + b[1]) / 2, 1)] for a, b in pairs] + odd
            self.window_s *= 2

    def duration_s(self) -> float:
        return self.duration + (self.last_at - self.since if self.live else 0.0)


class StreamReport:
    """Collects the figures of every stream a recording process receives. Owned by the event
    loop: the recording calls `frame` from its sink, `follow` when its subscriptions change,
    `keyframe_requested` with each PLI and `close` when it stops."""

    def __init__(self) -> None:
        self._streams: dict[StreamId, _Stream] = {}
        self._early_keyframes: dict[tuple[str, str], int] = {}  # asked for before the first frame
        self._closed = False
        self._failed = False  # a frame could not be counted (logged once)

    def frame(self, got: Received, media_id: str, kind: str) -> None:
        """One frame of stream (got.feed, media_id, kind) reached the recording. Never raises:
        the recording gets the frame whatever its figures are."""
        if got.frame is None or self._closed:
            return
        try:
            self._count(got, media_id, kind)
        except Exception:
            if not self._failed:
                self._failed = True
                log.exception("a frame of %s could not be counted in the recording report", got.feed)

    def _count(self, got: Received, media_id: str, kind: str) -> None:
        at = got.arrival
        key = (got.feed, media_id, kind)
        st = self._streams.get(key)
        if st is None:
            st = self._streams[key] = _Stream(joined=at, since=at, last_at=at)
            st.keyframe_requests = self._early_keyframes.pop((got.feed, media_id), 0) if kind == "video" else 0
        elif not st.live:  # subscribed again (the publisher came back)
            st.live, st.since, st.left = True, at, None
        elif at - st.last_at > GAP_S:
            st.gap(st.last_at, at)
        if got.source is not st.source:  # a new subscription: its numbering starts afresh
            st.source, st.frame_num, st.last_pts = got.source, None, None
            st.steps.clear()
        st.frames += 1
        st.last_at = max(st.last_at, at)
        if got.media_time is not None:
            held = at - got.media_time
            st.hold = held if st.hold is None else st.hold + HOLD_SMOOTHING * (held - st.hold)
        if isinstance(got.frame, EncodedVideo):
            self._h264(st, got.frame, at)
        elif kind == "video":
            self._picture(st, got.frame, at)
        else:
            self._sound(st, got.frame)

    @staticmethod
    def _h264(st: _Stream, frame: EncodedVideo, at: float) -> None:
        st.count_bytes(len(frame.data), at)
        au = h264.inspect(frame.data, st.sps)
        if au.sps is not None:
            st.sps = au.sps
            st.resolution(au.sps.width, au.sps.height, at)
        if au.frame_num is None or st.sps is None:
            return
        if not au.keyframe and st.frame_num is not None:  # an IDR starts frame_num afresh
            step = (au.frame_num - st.frame_num) % (1 << st.sps.log2_max_frame_num)
            st.lost += max(step - 1, 0)
        st.frame_num = au.frame_num

    @staticmethod
    def _picture(st: _Stream, frame: Any, at: float) -> None:
        if getattr(frame, "width", 0) and getattr(frame, "height", 0):
            st.resolution(int(frame.width), int(frame.height), at)
        pts = _seconds(frame, VIDEO_RATE)
        if pts is None:
            return
        step = pts - st.last_pts if st.last_pts is not None else None
        st.last_pts = pts
        if step is None or not 0 < step <= GAP_S:  # a jump (a wrap, a restart): no count
            return
        if len(st.steps) >= 5:
            usual = statistics.median(st.steps)
            if step > 1.5 * usual:
                st.lost += round(step / usual) - 1
        st.steps.append(step)

    @staticmethod
    def _sound(st: _Stream, frame: Any) -> None:
        rate = getattr(frame, "sample_rate", 0)
        pts = _seconds(frame, rate) if rate else None
        if pts is None:
            return
        step = pts - st.last_pts if st.last_pts is not None else None
        st.last_pts = pts
        length = frame.samples / rate
        if step is not None and length > 0 and 1.5 * length < step < DTX_STEP_S:
            st.lost += round(step / length) - 1

    def keyframe_requested(self, user_id: str, media_id: str) -> None:
        """The recording asked the publisher for a keyframe of its video `media_id`."""
        st = self._streams.get((user_id, media_id, "video"))
        if st is not None:
            st.keyframe_requests += 1
        else:
            self._early_keyframes[(user_id, media_id)] = self._early_keyframes.get((user_id, media_id), 0) + 1

    def follow(self, receiving: Collection[StreamId], at: float) -> None:
        """The streams the recording receives now; any other is no longer subscribed (its
        publisher left, or the task no longer records it) since `at`."""
        for key, st in self._streams.items():
            if st.live and key not in receiving:
                st.duration += st.last_at - st.since
                st.live, st.left = False, at

    def av_offset_ms(self, user_id: str, media_id: str) -> float | None:
        """AvOffsetMs of a user's streams (see the module's docstring)."""
        audio, video = self._streams.get((user_id, MAIN, "audio")), self._streams.get((user_id, media_id, "video"))
        if media_id != MAIN or audio is None or video is None or audio.hold is None or video.hold is None:
            return None
        return round((audio.hold - video.hold) * 1000, 1)

    def close(self, at: float) -> None:
        """The recording stops receiving: a stream silent since more than GAP_S ends in a gap,
        the last bitrate window is counted."""
        if self._closed:
            return
        self._closed = True
        for st in self._streams.values():
            if st.live and at - st.last_at > GAP_S:
                st.gap(st.last_at, at)
            if st.window_at is not None and st.window_bytes and st.last_at - st.window_at >= 1.0:
                st.close_window(st.last_at - st.window_at)

    def streams(self) -> list[dict[str, Any]]:
        """The streams as a part holds them (recording_report's fields, LastAt and Bytes)."""
        out = []
        for (user_id, media_id, kind), st in self._streams.items():
            duration = round(st.duration_s(), 3)
            out.append({
                "UserId": user_id, "MediaId": media_id, "Kind": kind, "Joined": _ms(st.joined),
                "Left": _ms(st.left) if st.left is not None else None, "LastAt": _ms(st.last_at),
                "DurationS": duration, "FramesReceived": st.frames, "FramesLost": st.lost,
                "KeyframeRequests": st.keyframe_requests, "Bytes": st.bytes,
                "BitrateKbps": recording_report.kbps(st.bytes, duration), "Bitrate": [list(p) for p in st.points],
                "Resolutions": list(st.resolutions), "Gaps": list(st.gaps),
                "AvOffsetMs": self.av_offset_ms(user_id, media_id),
            })
        return out


@dataclass(frozen=True)
class PartHeader:
    """Whose part it is."""

    task_id: str
    sdkappid: int
    room_id: str
    ha: int
    shard: int = 0


class ReportWriter:
    """Keeps a recorder process's part in the internal bucket: every `interval_s` when it
    changed, and at its end (`finish`). Owned by the event loop; the puts run in a thread, one
    at a time, so an older part never lands after a newer one."""

    def __init__(self, report: StreamReport, bucket: Bucket, header: PartHeader,
                 clock: Callable[[], float] = time.time, interval_s: float = INTERVAL_S) -> None:
        self.report = report
        self._bucket = bucket
        self._header = header
        self._clock = clock
        self._interval_s = interval_s
        self._started_at = _ms(clock())
        self._key = recording_report.part_key(header.task_id, header.ha, header.shard)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._written: str | None = None
        self._finished = False
        self._failed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep(), name="report")

    def part(self, ended: bool = False, task_ended: bool = False) -> dict[str, Any]:
        h = self._header
        now = _ms(self._clock())
        return {"TaskId": h.task_id, "SdkAppId": h.sdkappid, "RoomId": h.room_id, "Ha": h.ha, "Shard": h.shard,
                "StartedAt": self._started_at, "EndedAt": now if ended else None, "TaskEnded": task_ended,
                "UpdatedAt": now, "Streams": self.report.streams()}

    async def _keep(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
            except TimeoutError:
                await self._put(self.part())

    async def finish(self, task_ended: bool = False) -> None:
        """The last write (once): this process is done; `task_ended`: it ended the task."""
        if self._finished:
            return
        self._finished = True
        self._stop.set()
        try:
            await asyncio.wait_for(self._last(task_ended), PUT_TIMEOUT_S)
        except TimeoutError:
            log.warning("the recording report's last part was not stored in time")

    async def _last(self, task_ended: bool) -> None:
        if self._task is not None:
            await self._task  # a put under way lands first
        await self._put(self.part(ended=True, task_ended=task_ended))

    async def _put(self, part: dict[str, Any]) -> None:
        content = json.dumps({**part, "UpdatedAt": None}, separators=(",", ":"))
        if content == self._written:
            return
        body = json.dumps(part, separators=(",", ":")).encode()
        try:
            await asyncio.to_thread(self._bucket.put, self._key, body, "application/json")
        except Exception as exc:  # the report is a by-product: the recording goes on
            if not self._failed:
                log.warning("the recording report could not be stored (%s)", retry.error_code(exc))
            self._failed = True
            return
        self._written, self._failed = content, False
