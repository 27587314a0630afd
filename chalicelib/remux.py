"""HLS → MP4 / M4A without re-encoding: the packets of a recording's TS segments, read back
one segment at a time, placed on one wall clock and written into an MP4 part.

A user's separate audio and video playlists are aligned by their segments' wall-clock
starts (spec §7 FILE-ATTR / UTC17), so A/V stay in sync however late one of them began.
Only the MP4's sample index grows with the length; the media streams through. PyAV is
imported here only: the API functions never load it.
"""

from __future__ import annotations

import fractions
import heapq
import io
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.hls_index import Playlist
from chalicelib.mp4_parts import Part

log = logging.getLogger(__name__)

TS_RATE = 90000
TS_WRAP = 1 << 33
LOOK_AHEAD_MS = 120_000
RESYNC_MS = 1000  # a segment whose clock disagrees with its playlist start by more is re-anchored


class SourceError(Exception):
    """A segment could not be read from storage."""


@dataclass(frozen=True)
class Source:
    """One playlist and which of its elementary streams to take ("audio", "video")."""

    playlist: Playlist
    kinds: frozenset[str]
    fetch: Callable[[str], bytes]  # segment name → its bytes; raises SourceError


@dataclass(frozen=True)
class PartResult:
    path: Path
    start_ms: int
    end_ms: int
    packets: int
    kinds: frozenset[str]


@dataclass(order=True)
class _Item:
    wall_ms: float
    order: int
    kind: str = field(default="", compare=False)
    packet: Any = field(default=None, compare=False)


def remux_part(sources: Sequence[Source], part: Part, out: Path, container_format: str = "mp4") -> PartResult | None:
    """Write the packets of `part` into `out`; None when the part holds no packet at all."""
    import av

    merged = heapq.merge(*[_packets(src, part, n) for n, src in enumerate(sources)])
    ahead = _look_ahead(merged, frozenset().union(*(src.kinds for src in sources)))
    if not ahead:
        return None
    output = av.open(str(out), "w", format=container_format)
    mapped: dict[str, Any] = {}
    for item in sorted(ahead, key=lambda i: i.kind != "video"):  # video first, as players expect
        if item.kind not in mapped:
            mapped[item.kind] = output.add_stream_from_template(item.packet.stream)
    last_dts: dict[str, int] = {}
    start, end, count = None, 0.0, 0
    try:
        for item in itertools.chain(ahead, merged):
            stream = mapped.get(item.kind)
            if stream is None:
                continue
            packet = item.packet
            ts = round((item.wall_ms - part.start_ms) * TS_RATE / 1000)
            cto = (packet.pts - packet.dts) if packet.pts is not None and packet.dts is not None else 0
            ts = max(ts, last_dts.get(item.kind, -1) + 1)
            last_dts[item.kind] = ts
            packet.dts, packet.pts = ts, ts + cto
            packet.time_base = fractions.Fraction(1, TS_RATE)
            packet.stream = stream
            output.mux(packet)
            count += 1
            start = item.wall_ms if start is None else min(start, item.wall_ms)
            end = max(end, item.wall_ms + _duration_ms(packet))
    finally:
        output.close()
    assert start is not None
    return PartResult(out, int(start), int(round(end)), count, frozenset(mapped))


def _look_ahead(merged: Iterator[_Item], kinds: frozenset[str]) -> list[_Item]:
    """The first packets, until every wanted kind has shown up (its first packet is the template of
    its output stream) or LOOK_AHEAD_MS have passed: a kind that starts later than that is left out."""
    ahead: list[_Item] = []
    seen: set[str] = set()
    for item in merged:
        ahead.append(item)
        seen.add(item.kind)
        if seen >= kinds or item.wall_ms - ahead[0].wall_ms > LOOK_AHEAD_MS:
            break
    return ahead


def _duration_ms(packet: Any) -> float:
    if packet.duration and packet.time_base:
        return float(packet.duration * packet.time_base * 1000)
    return 0.0


def _packets(source: Source, part: Part, order: int) -> Iterator[_Item]:
    """The source's packets with wall-clock times inside the part, in decode order."""
    import av

    anchor: tuple[float, int] | None = None  # (wall ms, unwrapped dts) of one sample
    last_dts: int | None = None
    for seg in source.playlist.segments:
        if seg.end_ms < part.start_ms - RESYNC_MS or seg.start_ms >= part.end_ms:
            continue
        data = source.fetch(seg.name)
        try:
            container = av.open(io.BytesIO(data), "r", format="mpegts")
        except av.error.FFmpegError as exc:
            log.warning("segment %s cannot be read (%s): skipped", seg.name, exc)
            continue
        with container:
            wanted = [s for s in container.streams if s.type in source.kinds]
            seg_anchor_checked = False
            try:
                for packet in container.demux(wanted):
                    if packet.dts is None or packet.size == 0:
                        continue
                    dts = int(packet.dts)
                    if last_dts is not None:
                        while dts < last_dts - TS_WRAP // 2:
                            dts += TS_WRAP
                    if not seg_anchor_checked:
                        seg_anchor_checked = True
                        if anchor is None or abs(_wall(anchor, dts) - seg.start_ms) > RESYNC_MS:
                            anchor = (float(seg.start_ms), dts)
                    assert anchor is not None
                    last_dts = dts
                    wall = _wall(anchor, dts)
                    if part.start_ms <= wall < part.end_ms:
                        yield _Item(wall, order, packet.stream.type, packet)
            except av.error.FFmpegError as exc:
                log.warning("segment %s is damaged after some packets (%s): the rest is skipped", seg.name, exc)


def _wall(anchor: tuple[float, int], dts: int) -> float:
    return anchor[0] + (dts - anchor[1]) * 1000 / TS_RATE
