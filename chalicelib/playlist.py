"""HLS playlists as TRTC writes them (spec §7), written and read back: `render` for the
recorder, `parse` for the MP4/AAC remux and the merge tool.

Written RFC 8216-valid: `#EXTINF:<seconds>,` with the comma, TARGETDURATION from the real
segment lengths, TRTC's tags (`#EXT-X-TRTC-START-REC-TIME`, `#EXT-X-TRTC-VIDEO-METADATA`
where the picture size changes, `#EXT-X-TRTC-FILE-ATTR:<start ms>,<bytes>` before each
segment). Read leniently, as TRTC_Merge does: a segment's start comes from FILE-ATTR, else
from the UTC17 time in its name, else it follows the previous one; the first falls back to
START-REC-TIME.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib import naming


class PlaylistError(ValueError):
    """The playlist cannot be read as a recording."""


@dataclass(frozen=True)
class Segment:
    """A finished segment as the playlist lists it."""

    name: str
    start_ms: int  # wall-clock time of its first sample
    duration_ms: int
    size: int = 0  # bytes; 0 when the playlist does not say
    width: int = 0  # the picture size in force (0: no video metadata)
    height: int = 0
    discontinuity: bool = False  # a new source (the user came back) or a new resolution starts here

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


START_REC = "#EXT-X-TRTC-START-REC-TIME:"
FILE_ATTR = "#EXT-X-TRTC-FILE-ATTR:"
VIDEO_METADATA = "#EXT-X-TRTC-VIDEO-METADATA:"
DISCONTINUITY = "#EXT-X-DISCONTINUITY"
ENDLIST = "#EXT-X-ENDLIST"


def render(segments: Sequence[Segment], start_rec_ms: int, ended: bool) -> str:
    """The playlist text: TRTC's tags, then the segments, then ENDLIST once the stream ended.
    A discontinuity is marked before a segment that starts one or changes the picture size."""
    target = max([1] + [math.ceil(s.duration_ms / 1000 - 0.5) for s in segments])  # EXTINF rounded ≤ target
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-ALLOW-CACHE:NO", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-TARGETDURATION:{target}", f"{START_REC}{start_rec_ms}"]
    size = (0, 0)
    for i, seg in enumerate(segments):
        resized = bool(seg.width) and (seg.width, seg.height) != size
        if i and (seg.discontinuity or resized):
            lines.append(DISCONTINUITY)
        if resized:
            size = (seg.width, seg.height)
            lines.append(f"{VIDEO_METADATA}WIDTH:{seg.width} HEIGHT:{seg.height}")
        lines.append(f"{FILE_ATTR}{seg.start_ms},{seg.size}")
        lines.append(f"#EXTINF:{seg.duration_ms / 1000:.3f},")
        lines.append(seg.name)
    if ended:
        lines.append(ENDLIST)
    return "\n".join(lines) + "\n"


def closed(text: str) -> str | None:
    """A playlist whose writer died before ending it, ended where its last stored segment ends
    (None when it has ended already)."""
    if parse(text).ended:
        return None
    return text.rstrip("\n") + "\n" + ENDLIST + "\n"


def parse(text: str) -> Playlist:
    """A playlist read back (raises PlaylistError when it is none, or lists no segment)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an m3u8 playlist")
    segments: list[Segment] = []
    start_rec: int | None = None
    attr: tuple[int, int] | None = None
    duration: float | None = None
    size, discontinuity, ended = (0, 0), False, False
    try:
        for line in lines[1:]:
            if line.startswith(START_REC):
                start_rec = int(line[len(START_REC):])
            elif line.startswith(FILE_ATTR):
                start, _, length = line[len(FILE_ATTR):].partition(",")
                attr = (int(start), int(length or 0))
            elif line.startswith(VIDEO_METADATA):
                size = _size(line[len(VIDEO_METADATA):])
            elif line.startswith("#EXTINF:"):
                duration = float(line.split(":", 1)[1].split(",", 1)[0])
            elif line == DISCONTINUITY:
                discontinuity = True
            elif line == ENDLIST:
                ended = True
            elif not line.startswith("#"):
                if duration is None:
                    raise PlaylistError(f"segment {line} has no #EXTINF")
                segments.append(Segment(line, _start_of(line, attr, segments, start_rec), round(duration * 1000),
                                        attr[1] if attr else 0, *size, discontinuity))
                attr, duration, discontinuity = None, None, False
    except ValueError as exc:  # a tag with a malformed number
        raise PlaylistError(str(exc)) from None
    if not segments:
        raise PlaylistError("the playlist lists no segments")
    return Playlist(tuple(segments), start_rec, ended)


def _size(value: str) -> tuple[int, int]:
    """`WIDTH:640 HEIGHT:360` (TRTC may add more fields, e.g. ` Codec:27`)."""
    fields = dict(part.split(":", 1) for part in value.split() if ":" in part)
    return int(fields["WIDTH"]), int(fields["HEIGHT"])


def _start_of(name: str, attr: tuple[int, int] | None, before: list[Segment], start_rec: int | None) -> int:
    if attr is not None:
        return attr[0]
    recording = naming.parse(name.rsplit("/", 1)[-1])
    if recording is not None and recording.start_ms is not None:
        return recording.start_ms
    if before:
        return before[-1].end_ms
    if start_rec is not None:
        return start_rec
    raise PlaylistError(f"no start time for segment {name}")
