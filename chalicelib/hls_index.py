"""Reading a recorded HLS playlist back (spec §7): its segments with their wall-clock start
times, durations and sizes — what the MP4/AAC remux plans its parts from.

The start of a segment comes from `#EXT-X-TRTC-FILE-ATTR:<start ms>,<bytes>` when present,
else from the 17-digit UTC time in its name, else it follows the previous one; the first
falls back to `#EXT-X-TRTC-START-REC-TIME`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.naming import utc17_ms

_UTC17 = re.compile(r"_(\d{17})\.ts$")


class PlaylistError(ValueError):
    """The playlist cannot be read as a recording."""


@dataclass(frozen=True)
class Segment:
    name: str
    start_ms: int
    duration_ms: int
    size: int  # bytes; 0 when the playlist does not say

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


@dataclass(frozen=True)
class Playlist:
    segments: tuple[Segment, ...]
    start_rec_ms: int | None
    ended: bool

    @property
    def start_ms(self) -> int:
        return self.segments[0].start_ms

    @property
    def end_ms(self) -> int:
        return max(s.end_ms for s in self.segments)


def parse(text: str) -> Playlist:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an m3u8 playlist")
    segments: list[Segment] = []
    start_rec: int | None = None
    attr: tuple[int, int] | None = None
    duration: float | None = None
    ended = False
    for line in lines[1:]:
        if line.startswith("#EXT-X-TRTC-START-REC-TIME:"):
            start_rec = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TRTC-FILE-ATTR:"):
            start, _, size = line.split(":", 1)[1].partition(",")
            attr = (int(start), int(size or 0))
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment {line} has no #EXTINF")
            segments.append(Segment(line, _start_of(line, attr, segments, start_rec), round(duration * 1000),
                                    attr[1] if attr else 0))
            attr, duration = None, None
    if not segments:
        raise PlaylistError("the playlist lists no segments")
    return Playlist(tuple(segments), start_rec, ended)


def _start_of(name: str, attr: tuple[int, int] | None, before: list[Segment], start_rec: int | None) -> int:
    if attr is not None:
        return attr[0]
    if m := _UTC17.search(name):
        return utc17_ms(m.group(1))
    if before:
        return before[-1].end_ms
    if start_rec is not None:
        return start_rec
    raise PlaylistError(f"no start time for segment {name}")
