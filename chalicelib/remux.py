"""HLS → MP4 / M4A without re-encoding: the packets of a recording's TS segments, read back
one segment at a time, placed on one wall clock and written into an MP4 part, its index
first (open_mp4: the merge tool's outputs are opened there too).

A user's separate audio and video playlists are aligned by their segments' wall-clock
starts (spec §7 FILE-ATTR / UTC17), so A/V stay in sync however late one of them began.
Only the MP4's sample index grows with the length; the media streams through. PyAV is
imported here only: the API functions never load it.

Per packet, Python does a few integer operations only: each source's packets are rebased
onto the part's clock as they are demuxed and handed over a second at a time (a window); the
sources' windows are merged by time, and libavformat's interleaving queue orders the packets
within them (by timestamp, so the order they came in does not show in the file).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
import logging
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
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
# a window: the packets of one source that start within one second of the part's clock. Under
# libavformat's max_interleave_delta (10 s), so its interleaving puts them in time order.
WINDOW_TICKS = TS_RATE
# mp4/ipod muxer options of every MP4 and M4A cloudrec writes: the index (moov) before the media (mdat)
MUXER_OPTIONS = {"movflags": "+faststart"}


class SourceError(Exception):
    """A segment could not be read from storage."""


@dataclass(frozen=True)
class Source:
    """One playlist and which of its elementary streams to take ("audio", "video"); a kind comes
    from one source of a part only."""

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


# packets of one source, in its demux order: (key, source order, number, kind by input stream index,
# packets); heapq compares the first three. While the output streams are being made (the look-ahead)
# one packet each, its key its wall clock (ms); then a window each, its key the window's index.
_Window = tuple[float, int, int, list[str | None], list[Any]]


def remux_part(sources: Sequence[Source], part: Part, out: Path, container_format: str = "mp4") -> PartResult | None:
    """Write the packets of `part` into `out`; None when the part holds no packet at all."""
    kinds = frozenset().union(*(src.kinds for src in sources))
    if sum(len(src.kinds) for src in sources) != len(kinds):
        raise ValueError(f"a kind comes from more than one source: {[sorted(src.kinds) for src in sources]}")
    readers = [_Reader(src, part, n) for n, src in enumerate(sources)]
    try:
        ahead, rest = _look_ahead(readers, kinds)
        if not ahead:
            return None
        output = open_mp4(out, container_format)
        try:
            mapped: dict[str, Any] = {}
            for _, _, _, kind_of, (packet,) in sorted(ahead, key=lambda i: i[3][i[4][0].stream_index] != "video"):
                kind = kind_of[packet.stream_index]
                if kind not in mapped:  # video first, as players expect
                    mapped[kind] = output.add_stream_from_template(packet.stream)
            for reader in readers:
                reader.release()  # the templates are copied: demuxers that are done may close
            windows = rest[0] if len(rest) == 1 else heapq.merge(*rest)
            count = 0
            for _, _, _, kind_of, packets in itertools.chain(ahead, windows):
                targets = [mapped.get(kind) if kind else None for kind in kind_of]
                if all(t is not None and t.index == i for i, t in enumerate(targets) if kind_of[i]):
                    output.mux(packets)  # the packets' stream indices are the output's already
                    count += len(packets)
                    continue
                for packet in packets:
                    target = targets[packet.stream_index]
                    if target is not None:
                        packet.stream = target
                        output.mux_one(packet)
                        count += 1
        finally:
            output.close()
        end = max(reader.end_ms(kind) for reader in readers for kind in mapped if kind in reader.source.kinds)
        return PartResult(out, int(ahead[0][0]), int(round(end)), count, frozenset(mapped))
    finally:
        for reader in readers:
            reader.close()


def open_mp4(path: Path, container_format: str = "mp4") -> Any:
    """A PyAV output container for an MP4 ("ipod": M4A) that starts playing before it has fully
    arrived: its index goes before its media ("faststart"). libavformat moves the index there at
    close, re-reading the file through its path (a second pass over it, in place): so a path on a
    seekable file system, never a Python stream, and the file is uploaded only once closed."""
    import av

    return av.open(str(path), "w", format=container_format, container_options=MUXER_OPTIONS)


def _look_ahead(readers: Sequence[_Reader], kinds: frozenset[str]) -> tuple[list[_Window], list[Iterator[_Window]]]:
    """The first packets, merged by wall clock, until every wanted kind has shown up (its first
    packet is the template of its output stream) or LOOK_AHEAD_MS have passed: a kind that starts
    later than that is left out. Then each reader's windows (what it had read on included).

    The templates are copied as the look-ahead ends, each demuxer where it stands then: the AAC
    parser keeps a running bit rate in the stream's parameters, which the MP4 keeps (esds)."""
    sources = [iter(reader) for reader in readers]
    heads = {n: head for n, source in enumerate(sources) if (head := next(source, None)) is not None}
    ahead: list[_Window] = []
    seen: set[str | None] = set()
    while heads:
        order = min(heads, key=lambda n: heads[n][:3])
        item = heads.pop(order)
        ahead.append(item)
        seen.add(item[3][item[4][0].stream_index])
        if seen >= kinds or item[0] - ahead[0][0] > LOOK_AHEAD_MS:
            break
        head = next(sources[order], None)
        if head is not None:
            heads[order] = head
    for reader in readers:
        reader.look_ahead = False
    rest: list[Iterator[_Window]] = [itertools.chain(_as_window(heads[n]) if n in heads else (), source)
                                     for n, source in enumerate(sources)]
    return ahead, rest


def _as_window(item: _Window) -> tuple[_Window]:
    """A packet read ahead as the window it starts."""
    return ((item[4][0].dts // WINDOW_TICKS, *item[1:]),)


def _duration_ms(packet: Any) -> float:
    if packet.duration and packet.time_base:
        return float(packet.duration * packet.time_base * 1000)
    return 0.0


class _Reader:
    """One source's packets with wall-clock times inside the part, in decode order, a window at a
    time; their timestamps rebased onto the part's clock (TS time base, 1/90000 s, from the part's
    start), rising within each kind.

    The part's segments are read as one MPEG-TS stream, one after the other (TS files
    concatenate; one demuxer instead of one per segment costs a quarter less CPU). A
    recording's timestamps run on one clock from its first sample, gaps included, so the
    first segment's start anchors them all. Should FFmpeg give up on a damaged segment, the
    reading starts again after it."""

    def __init__(self, source: Source, part: Part, order: int) -> None:
        self.source, self.part, self.order = source, part, order
        self._slot = {kind: n for n, kind in enumerate(sorted(source.kinds))}
        self._last_ts = [-1] * len(self._slot)  # per kind: its latest packet's part ticks
        # per kind: its latest packet, with what places it on the wall clock (anchor ms, anchor dts, dts)
        self._last: list[tuple[Any, float, int, int] | None] = [None] * len(self._slot)
        self._held: list[Any] = []  # demuxers done with, kept open while their streams may be templates
        self._hold = True
        self.look_ahead = True  # one packet at a time, keyed by its wall clock; then windows
        self._windows = self._read()

    def __iter__(self) -> Iterator[_Window]:
        return self._windows

    def end_ms(self, kind: str) -> float:
        """Wall clock (ms) at which the kind's last packet ends; call after muxing (the packet's
        duration is in its output stream's time base then)."""
        last = self._last[self._slot[kind]]
        if last is None:
            return 0.0
        packet, anchor_ms, anchor_dts, dts = last
        return anchor_ms + (dts - anchor_dts) / 90 + _duration_ms(packet)

    def release(self) -> None:
        """The output streams exist: demuxers may close once done."""
        self._hold = False
        for container in self._held:
            container.close()
        self._held.clear()

    def close(self) -> None:
        self._windows.close()
        self.release()

    def _read(self) -> Generator[_Window, None, None]:
        import av

        part = self.part
        inside = [seg for seg in self.source.playlist.segments
                  if seg.end_ms >= part.start_ms - ANCHOR_SLACK_MS and seg.start_ms < part.end_ms]
        sequence = 0
        while inside:
            chunks = _prefetched(self.source.fetch, inside)
            reader = _Concatenated(data for _, data in chunks)
            container = None
            try:
                container = av.open(reader, "r", format="mpegts", buffer_size=READ_BUFFER)
                with contextlib.closing(self._demux(container, inside[0].start_ms)) as windows:
                    for key, kind_of, packets in windows:
                        yield key, self.order, sequence, kind_of, packets
                        sequence += 1
                return
            except av.error.FFmpegError as exc:
                damaged = inside[max(0, reader.chunks - 1)]
                log.warning("segment %s is damaged (%s): reading goes on after it", damaged.name, exc)
                inside = inside[max(1, reader.chunks):]
            finally:
                chunks.close()  # no more fetches
                if container is not None:
                    if self._hold:
                        self._held.append(container)
                    else:
                        container.close()

    def _demux(self, container: Any,
               start_ms: int) -> Generator[tuple[float, list[str | None], list[Any]], None, None]:
        """The container's packets inside the part: (key, kind by input stream index, packets), one
        packet at a time during the look-ahead, then a window at a time. The remux's hot loop."""
        import av

        wanted = [s for s in container.streams if s.type in self.source.kinds]
        kind_of: list[str | None] = [None] * len(container.streams)
        slot_of = [-1] * len(container.streams)
        for s in wanted:
            kind_of[s.index], slot_of[s.index] = s.type, self._slot[s.type]
        last_ts, last = self._last_ts, self._last
        span = (self.part.end_ms - self.part.start_ms) * 90
        window: list[Any] = []
        index, limit = 0, 0  # the window's index and where the next one starts (part ticks)
        one_by_one = self.look_ahead
        with contextlib.closing(container.demux(wanted)) as packets:
            try:
                anchor = next((p for p in packets if p.dts is not None), None)  # demux() ends with empty packets
                if anchor is None:
                    return
                anchor_ms, anchor_dts = float(start_ms), anchor.dts
                shift = (start_ms - self.part.start_ms) * 90 - anchor_dts  # unwrapped dts → part ticks
                last_dts = anchor_dts
                for packet in itertools.chain((anchor,), packets):
                    raw = packet.dts
                    if raw is None:
                        continue
                    dts = raw
                    while dts < last_dts - HALF_WRAP:
                        dts += TS_WRAP
                    last_dts = dts
                    ts = dts + shift
                    if ts < 0 or ts >= span:
                        continue
                    slot = slot_of[packet.stream_index]
                    if ts <= last_ts[slot]:
                        ts = last_ts[slot] + 1
                    last_ts[slot] = ts
                    pts = packet.pts
                    packet.dts = ts
                    packet.pts = ts if pts is None else ts + pts - raw
                    last[slot] = (packet, anchor_ms, anchor_dts, dts)
                    if one_by_one:
                        yield anchor_ms + (dts - anchor_dts) / 90, kind_of, [packet]
                        one_by_one = self.look_ahead
                    elif ts >= limit:
                        if window:
                            yield index, kind_of, window
                        window = [packet]
                        index = ts // WINDOW_TICKS
                        limit = (index + 1) * WINDOW_TICKS
                    else:
                        window.append(packet)
            except av.error.FFmpegError:
                if window:  # what came before the damage is kept
                    yield index, kind_of, window
                raise
        if window:
            yield index, kind_of, window


class _Concatenated(io.RawIOBase):
    """Byte chunks read as one stream (what PyAV demuxes from). A read stops at the end of a chunk,
    so `chunks` tells which one the demuxer is in."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._at = 0
        self.chunks = 0  # how many chunks have been started

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while self._at >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self.chunks += 1
            self._chunk, self._at = bytes(chunk), 0
        at = self._at
        piece = self._chunk[at:] if size < 0 else self._chunk[at:at + size]
        self._at = at + len(piece)
        return piece


def _prefetched(fetch: Callable[[str], bytes],
                segments: Sequence[Segment]) -> Generator[tuple[Segment, bytes], None, None]:
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
