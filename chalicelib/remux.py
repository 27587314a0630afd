"""HLS → MP4 / M4A without re-encoding: the packets of a recording's TS segments, read back
one segment at a time, placed on one wall clock and written into an MP4 part, its index
first (open_mp4: the merge tool's outputs are opened there too).

A user's separate audio and video playlists are aligned by their segments' wall-clock
starts (spec §7 FILE-ATTR / UTC17), so A/V stay in sync however late one of them began.
Only the MP4's sample index grows with the length; the media streams through. PyAV is
imported here only: the API functions never load it.
"""

from __future__ import annotations

import heapq
import io
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.mp4_parts import Part
from chalicelib.playlist import Playlist, Segment

log = logging.getLogger(__name__)

TS_RATE = 90000
TS_WRAP = 1 << 33
HALF_WRAP = TS_WRAP // 2
LOOK_AHEAD_MS = 120_000
PREFETCH = 4
READ_BUFFER = 1 << 16  # small: after a damaged segment, reading resumes near it
ANCHOR_SLACK_MS = 1000  # a segment ending this little before a part may still hold its first packets
# mp4/ipod muxer options of every MP4 and M4A cloudrec writes: the index (moov) before the media (mdat)
MUXER_OPTIONS = {"movflags": "+faststart"}


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


# a packet on its way: (wall ms, source order, sequence, pts - dts, kind, packet); heapq compares the first three
_Item = tuple[float, int, int, int, str, Any]


def remux_part(sources: Sequence[Source], part: Part, out: Path, container_format: str = "mp4") -> PartResult | None:
    """Write the packets of `part` into `out`; None when the part holds no packet at all."""
    streams = [_packets(src, part, n) for n, src in enumerate(sources)]
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams)
    ahead = _look_ahead(merged, frozenset().union(*(src.kinds for src in sources)))
    if not ahead:
        return None
    output = open_mp4(out, container_format)
    mapped: dict[str, Any] = {}
    for item in sorted(ahead, key=lambda i: i[4] != "video"):  # video first, as players expect
        if item[4] not in mapped:
            mapped[item[4]] = output.add_stream_from_template(item[5].stream)
    last_ts: dict[str, int] = {kind: -1 for kind in mapped}
    last: dict[str, tuple[float, Any]] = {}  # kind → (wall ms, packet) of its latest packet
    start = ahead[0][0]
    count = 0
    try:
        for wall, _, _, cto, kind, packet in itertools.chain(ahead, merged):
            stream = mapped.get(kind)
            if stream is None:
                continue
            ts = round((wall - part.start_ms) * 90)  # TS time base (1/90000 s): the packets' own
            if ts <= last_ts[kind]:
                ts = last_ts[kind] + 1
            last_ts[kind] = ts
            packet.dts, packet.pts = ts, ts + cto
            packet.stream = stream
            output.mux_one(packet)
            last[kind] = (wall, packet)
            count += 1
    finally:
        output.close()
    end = max(wall + _duration_ms(packet) for wall, packet in last.values())
    return PartResult(out, int(start), int(round(end)), count, frozenset(mapped))


def open_mp4(path: Path, container_format: str = "mp4") -> Any:
    """A PyAV output container for an MP4 ("ipod": M4A) that starts playing before it has fully
    arrived: its index goes before its media ("faststart"). libavformat moves the index there at
    close, re-reading the file through its path (a second pass over it, in place): so a path on a
    seekable file system, never a Python stream, and the file is uploaded only once closed."""
    import av

    return av.open(str(path), "w", format=container_format, container_options=MUXER_OPTIONS)


def _look_ahead(merged: Iterator[_Item], kinds: frozenset[str]) -> list[_Item]:
    """The first packets, until every wanted kind has shown up (its first packet is the template of
    its output stream) or LOOK_AHEAD_MS have passed: a kind that starts later than that is left out."""
    ahead: list[_Item] = []
    seen: set[str] = set()
    for item in merged:
        ahead.append(item)
        seen.add(item[4])
        if seen >= kinds or item[0] - ahead[0][0] > LOOK_AHEAD_MS:
            break
    return ahead


def _duration_ms(packet: Any) -> float:
    if packet.duration and packet.time_base:
        return float(packet.duration * packet.time_base * 1000)
    return 0.0


def _packets(source: Source, part: Part, order: int) -> Iterator[_Item]:
    """The source's packets with wall-clock times inside the part, in decode order.

    The part's segments are read as one MPEG-TS stream, one after the other (TS files
    concatenate; one demuxer instead of one per segment costs a quarter less CPU). A
    recording's timestamps run on one clock from its first sample, gaps included, so the
    first segment's start anchors them all. Should FFmpeg give up on a damaged segment, the
    reading starts again after it."""
    import av

    inside = [seg for seg in source.playlist.segments
              if seg.end_ms >= part.start_ms - ANCHOR_SLACK_MS and seg.start_ms < part.end_ms]
    seq = 0
    while inside:
        reader = _Concatenated(data for _, data in _prefetched(source.fetch, inside))
        try:
            with av.open(reader, "r", format="mpegts", buffer_size=READ_BUFFER) as container:
                wanted = [s for s in container.streams if s.type in source.kinds]
                kinds = {s.index: s.type for s in wanted}
                anchor: tuple[float, int] | None = None  # (wall ms, unwrapped dts) of the first sample
                last_dts = 0
                for packet in container.demux(wanted):
                    raw, pts = packet.dts, packet.pts
                    if raw is None:  # the empty packets demux() ends with
                        continue
                    dts = raw
                    if anchor is None:
                        anchor = (float(inside[0].start_ms), dts)
                    else:
                        while dts < last_dts - HALF_WRAP:
                            dts += TS_WRAP
                    last_dts = dts
                    wall = anchor[0] + (dts - anchor[1]) / 90
                    if part.start_ms <= wall < part.end_ms:
                        seq += 1
                        yield (wall, order, seq, pts - raw if pts is not None else 0, kinds[packet.stream_index],
                               packet)
            return
        except av.error.FFmpegError as exc:
            damaged = inside[max(0, reader.chunks - 1)]
            log.warning("segment %s is damaged (%s): reading goes on after it", damaged.name, exc)
            inside = inside[max(1, reader.chunks):]


class _Concatenated(io.RawIOBase):
    """Byte chunks read as one stream (what PyAV demuxes from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = memoryview(b"")
        self.chunks = 0  # how many chunks have been started

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.chunks += 1
            self._rest = memoryview(chunk)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def _prefetched(fetch: Callable[[str], bytes], segments: Sequence[Segment]) -> Iterator[tuple[Segment, bytes]]:
    """The segments' bytes in order, PREFETCH of them on their way at once (storage latency, not
    bandwidth, bounds a sequential reader: ~600 GETs per GB); memory stays at PREFETCH segments."""
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="fetch") as pool:
        pending: deque[tuple[Segment, Future[bytes]]] = deque()
        todo = iter(segments)
        for seg in itertools.islice(todo, PREFETCH):
            pending.append((seg, pool.submit(fetch, seg.name)))
        while pending:
            seg, future = pending.popleft()
            data = future.result()  # a SourceError surfaces here, in order
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(fetch, nxt.name)))
            yield seg, data
