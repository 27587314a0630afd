"""Where a received frame belongs on the recorder's clock: its RTP timestamp mapped to the
sender's wall clock through the stream's RTCP sender reports.

The receive path holds each kind of media for its own time: aiortc's video jitter buffer hands a
frame out only when the next frame's first packet arrives (one frame interval: 33 ms at 30 fps,
67 ms at 15), its audio buffer ~80 ms. Placing frames by arrival therefore puts a publisher's
sound ahead of its picture. A sender report pairs an RTP timestamp with the sender's NTP time,
and all streams of one sender share that NTP clock, so frames placed through their reports
keep the relation they had when they were sent, whatever each waited on the way here.

One offset per publisher turns the sender's clock into the recorder's. It is taken when the
first report of the publisher's audio arrives (or of its video, when it sends no audio), from
where that stream was already being placed, so the sound never moves; the video moves by what
its buffer held. Before its first report a stream is placed by arrival less the usual hold of
its kind. Each stream then follows its timestamps; a later report re-places it only when it
disagrees by more than `DRIFT_S` (clock drift, not the sender's jitter).

The limit: Janus 1.1 writes the reports it sends from its own relay time, so a delay on the
publisher's leg (its encoder, its network) is invisible to any recorder behind it. Where the SFU
forwards the publisher's capture times (abs-capture-time: capture_time.py), they take the
reports' place once every stream of the publisher has one: the same pairing of an RTP timestamp
with a time, on the publisher's clock, from before that leg.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

RTP_WRAP = 1 << 32
NTP_TO_UNIX = 2208988800
DRIFT_S = 0.010  # a report that moves a stream by less than this is the sender's jitter
MAX_SKEW_S = 2.0  # timestamps this far from arrival leapt (a restart): the stream is placed by arrival again
# before its first report, a stream is placed this long before it arrived: audio waits in aiortc's
# buffer ~80 ms, a picture one frame interval (taken as 40 ms for the first picture, then learnt
# from the step to the second)
HOLD_S = {"audio": 0.08, "video": 0.04}
MAX_HOLD_S = 0.2
# a decoded Opus sample comes out after the one that went in by the encoder's lookahead (libopus at
# 48 kHz, in browsers and aiortc alike: 6.5 ms); the RTP timestamp is the input's
CODEC_DELAY_S = {"audio": 0.0065, "video": 0.0}
RATES = {"audio": 48000, "video": 90000}  # Opus, and every video codec: the RTP clock rates


def ntp_seconds(ntp: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds."""
    return (ntp >> 32) - NTP_TO_UNIX + (ntp & 0xFFFFFFFF) / RTP_WRAP


@dataclass
class _Stream:
    kind: str
    origin: Callable[[], int | None]  # the RTP timestamp of pts 0 (the receiver's), once known
    anchor: tuple[float, int] | None = None  # (time, pts): pts's place on the recorder's clock
    reported: bool = False  # the anchor comes from a sender report
    report: tuple[float, int] | None = None  # the newest report: sender time, RTP timestamp
    captured: tuple[float, int] | None = None  # the newest capture time (abs-capture-time), likewise
    placed: int = 0  # frames placed since the anchor was taken by arrival

    @property
    def rate(self) -> int:
        return RATES[self.kind]

    def at(self, pts: int) -> float:
        assert self.anchor is not None
        return self.anchor[0] + (pts - self.anchor[1]) / self.rate

    def sent(self, pts: int, by_capture: bool) -> float | None:
        """When the sender says the sample at `pts` was taken (its clock), if it has said: by its
        capture times, or by its reports."""
        origin = self.origin()
        pair = self.captured if by_capture else self.report
        if pair is None or origin is None:
            return None
        when, rtp = pair
        reported_pts = rtp - origin
        reported_pts += round((pts - reported_pts) / RTP_WRAP) * RTP_WRAP  # the report's side of a wrap
        return when + (pts - reported_pts) / self.rate


class FeedClock:
    """Places the frames of one publisher's streams. Owned by the event loop that receives them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._streams: dict[str, _Stream] = {}
        self._offset: float | None = None  # the recorder's clock less the sender's
        self._by_capture = False  # placed by capture times rather than reports
        self._since = time.time()

    def add(self, mid: str, kind: str, origin: Callable[[], int | None]) -> None:
        self._streams[mid] = _Stream(kind if kind in RATES else "video", origin)

    def sender_report(self, mid: str, ntp: int, rtp: int) -> None:
        stream = self._streams.get(mid)
        if stream is not None:
            if stream.report is None:
                log.info("%s/%s (%s): first sender report %.2f s after subscribing", self.name, mid, stream.kind,
                         time.time() - self._since)
            stream.report = (ntp_seconds(ntp), rtp)

    def capture_time(self, mid: str, ntp: int, rtp: int) -> None:
        """The publisher captured the sample at RTP timestamp `rtp` at `ntp` (abs-capture-time)."""
        stream = self._streams.get(mid)
        if stream is None:
            return
        stream.captured = (ntp_seconds(ntp), rtp)
        if not self._by_capture and all(s.captured for s in self._streams.values()):
            self._by_capture, self._offset = True, None  # the offset is taken again, on the new clock
            log.info("%s: placed by its capture times (abs-capture-time) from now on", self.name)

    def offset_ms(self) -> float | None:
        """The sender's clock less the recorder's, once known (ms)."""
        return None if self._offset is None else -self._offset * 1000

    def place(self, mid: str, pts: int, arrival: float) -> float:
        """The recorder-clock time of `mid`'s sample at `pts`, which arrived at `arrival`."""
        stream = self._streams[mid]
        return self._place(stream, pts, arrival) - CODEC_DELAY_S[stream.kind]

    def _place(self, stream: _Stream, pts: int, arrival: float) -> float:
        sent = stream.sent(pts, self._by_capture)
        if sent is not None and self._offset is None and self._leads(stream):
            current = stream.at(pts) if stream.reported else self._by_arrival(stream, pts, arrival)
            self._offset = current - sent
            log.info("%s: placed by its %s from now on (its %s sets the clock: sender − recorder %+.1f ms)",
                     self.name, "capture times" if self._by_capture else "sender reports", stream.kind,
                     self.offset_ms())
        if sent is not None and self._offset is not None:
            at = sent + self._offset
            if abs(at - arrival) <= MAX_SKEW_S:
                if not (stream.reported and stream.anchor and abs(stream.at(pts) - at) <= DRIFT_S):
                    stream.anchor, stream.reported = (at, pts), True
                return stream.at(pts)
            stream.report = stream.captured = None  # leapt: wait for a report of the new timeline
            stream.reported = False
        if stream.reported and self._offset is None:  # the publisher's clock changed: on until it is known
            return stream.at(pts)
        if stream.reported:
            stream.anchor, stream.reported = None, False
        return self._by_arrival(stream, pts, arrival)

    def _leads(self, stream: _Stream) -> bool:
        """Whether the publisher's offset is taken from `stream`: its audio, or else its video."""
        return stream.kind == "audio" or all(s.kind != "audio" for s in self._streams.values())

    def _by_arrival(self, stream: _Stream, pts: int, arrival: float) -> float:
        if stream.anchor is None or abs(stream.at(pts) - arrival) > MAX_SKEW_S:
            stream.anchor, stream.placed = (arrival - HOLD_S[stream.kind], pts), 0
        elif stream.kind == "video" and stream.placed == 1:  # the second picture: the frame interval is known
            step = (pts - stream.anchor[1]) / stream.rate
            if 0 < step <= MAX_HOLD_S:
                stream.anchor = (arrival - step, pts)
        stream.placed += 1
        return stream.at(pts)
