"""Where an MP4/AAC output is split (spec §2.2 MaxMediaFileDuration): before a part would
last longer than MaxMediaFileDuration minutes (default 1440) or 24 h, or grow past 2 GB.

Parts are cut on segment boundaries of the leading stream (video when there is video): a
recorded segment starts on a keyframe, so every part starts on one and needs no re-encode.
A pure function of the playlists, so every invocation that makes one part agrees on all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.playlist import Playlist

DAY_MS = 24 * 3600 * 1000
MAX_BYTES = 2 * 1024 ** 3


@dataclass(frozen=True)
class Part:
    index: int  # from 1
    start_ms: int  # wall clock; the first part starts at the earliest sample of any stream
    end_ms: int  # exclusive; the last part ends after the latest sample


def plan(lead: Playlist, others: Sequence[Playlist], max_minutes: int = 1440,
         max_bytes: int = MAX_BYTES) -> list[Part]:
    limit_ms = min(max_minutes * 60_000, DAY_MS)
    starts = [s.start_ms for s in lead.segments]
    # bytes that fall into each lead segment's span: its own, plus other streams' segments by start
    sizes = [s.size for s in lead.segments]
    for other in others:
        for seg in other.segments:
            sizes[_span_of(starts, seg.start_ms)] += seg.size
    first = min([lead.start_ms] + [o.start_ms for o in others])
    last = max([lead.end_ms] + [o.end_ms for o in others])
    cuts = [first]
    part_start, part_bytes = first, 0
    for i, seg in enumerate(lead.segments):
        if i and (seg.end_ms - part_start > limit_ms or part_bytes + sizes[i] > max_bytes):
            cuts.append(seg.start_ms)
            part_start, part_bytes = seg.start_ms, 0
        part_bytes += sizes[i]
    cuts.append(last + 1)
    return [Part(n + 1, a, b) for n, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))]


def _span_of(starts: list[int], t: int) -> int:
    """Index of the lead segment whose span holds time t (the first one for earlier times)."""
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo
