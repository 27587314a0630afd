"""HLS playlists as TRTC writes them, kept RFC 8216-valid (`#EXTINF:<seconds>,` with the
comma, TARGETDURATION from the real segment lengths) — a pure function of the segments."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PlaylistSegment:
    """A finished segment as the playlist lists it."""

    name: str
    duration: float  # seconds
    start_ms: int  # wall-clock time of its first sample
    size: int  # bytes
    width: int = 0  # video only
    height: int = 0
    discontinuity: bool = False  # a new source (the user came back) or a new resolution


def render(segments: Sequence[PlaylistSegment], start_rec_ms: int, ended: bool) -> str:
    """The playlist text: TRTC's tags, then the segments, then ENDLIST once the stream ended."""
    target = max([1] + [math.ceil(s.duration - 0.5) for s in segments])  # EXTINF rounded ≤ target
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-ALLOW-CACHE:NO", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-TRTC-START-REC-TIME:{start_rec_ms}"]
    size = (0, 0)
    for i, seg in enumerate(segments):
        resized = bool(seg.width) and (seg.width, seg.height) != size
        if i and (seg.discontinuity or resized):
            lines.append("#EXT-X-DISCONTINUITY")
        if resized:
            size = (seg.width, seg.height)
            lines.append(f"#EXT-X-TRTC-VIDEO-METADATA:WIDTH:{seg.width} HEIGHT:{seg.height}")
        lines.append(f"#EXT-X-TRTC-FILE-ATTR:{seg.start_ms},{seg.size}")
        lines.append(f"#EXTINF:{seg.duration:.3f},")
        lines.append(seg.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
