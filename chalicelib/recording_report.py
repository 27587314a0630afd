"""A task's recording report: per stream, how the media came in — duration, frames received
and lost, keyframe requests, bitrate, resolution changes, gaps, A/V offset — and the task's
hand-overs, kept with the task in the internal bucket.

Each recorder process writes its part (`recorder_container/stream_report.py`) at
`reports/<TaskId>/ha<N>.json` (a shard process of a big task at `ha<N>-shard<K>.json`),
periodically and at its end. `merge` makes one report of the parts, pure; `read` lists and
merges a task's parts (the admin CLI's `report`, the console). Times are Unix epoch ms.

A stream is one (UserId, MediaId, Kind) of the task: a publisher who leaves and comes back,
or who is recorded by successive recorders across a hand-over, is one stream — counters
summed, series joined, and the hole a hand-over left listed as a gap (the publisher stayed).
No secret ever goes into a part: ids, times and counts only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from chalicelib.storage import Bucket

log = logging.getLogger(__name__)

PREFIX = "reports/"
GAP_MS = 1000  # no media of a stream this long while its publisher stayed: a gap
_PART = re.compile(r"ha(\d+)(?:-shard(\d+))?\.json")
# what a merged stream holds, in order (the parts hold LastAt and Bytes besides, to merge by)
STREAM_FIELDS = ("UserId", "MediaId", "Kind", "Joined", "Left", "DurationS", "FramesReceived", "FramesLost",
                 "KeyframeRequests", "BitrateKbps", "Bitrate", "Resolutions", "Gaps", "AvOffsetMs")


def task_prefix(task_id: str) -> str:
    return f"{PREFIX}{task_id}/"


def part_key(task_id: str, ha: int, shard: int = 0) -> str:
    """Where a recorder process (HA index `ha`; `shard` 0: the task's recorder) keeps its part."""
    return f"{task_prefix(task_id)}ha{ha}{f'-shard{shard}' if shard else ''}.json"


def part_of_key(key: str) -> tuple[int, int] | None:
    """(ha, shard) of a part's key; None for a key that names no part."""
    found = _PART.fullmatch(key.rsplit("/", 1)[-1])
    return (int(found[1]), int(found[2] or 0)) if found else None


def kbps(byte_count: int | None, seconds: float) -> float | None:
    """The average bitrate of `byte_count` bytes over `seconds` (None: sizes unknown)."""
    if byte_count is None:
        return None
    return round(byte_count * 8 / 1000 / seconds, 1) if seconds > 0 else 0.0


def _check_part(part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise ValueError("a report part is not an object")
    for name, kind in (("TaskId", str), ("Ha", int), ("StartedAt", int), ("Streams", list)):
        if not isinstance(part.get(name), kind):
            raise ValueError(f"a report part has no {kind.__name__} {name}")
    for stream in part["Streams"]:
        if not isinstance(stream, dict) or not all(name in stream for name in (*STREAM_FIELDS, "LastAt", "Bytes")):
            raise ValueError("a report part has a stream without every field")
    return part


def _stream_key(stream: dict[str, Any]) -> tuple[str, str, str]:
    return stream["UserId"], stream["MediaId"], stream["Kind"]


def _without_repeats(resolutions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Resolution changes: an entry the same size as the one before (a successor's first) is none."""
    out: list[dict[str, Any]] = []
    for entry in resolutions:
        if not out or (out[-1]["Width"], out[-1]["Height"]) != (entry["Width"], entry["Height"]):
            out.append(entry)
    return out


def _merge_stream(pieces: Sequence[tuple[int, dict[str, Any]]], last_ha: int) -> dict[str, Any]:
    """One stream from its pieces (ha, stream), in ha order."""
    gaps: list[dict[str, Any]] = []
    for (_, before), (_, after) in zip(pieces, pieces[1:], strict=False):
        gaps += before["Gaps"]
        hole = after["Joined"] - before["LastAt"]
        if before["Left"] is None and hole > GAP_MS:  # recorded until the hand-over, and again after it
            gaps.append({"At": before["LastAt"], "DurationMs": hole})
    gaps += pieces[-1][1]["Gaps"]
    ha, last = pieces[-1]
    left = last["Left"]
    if left is None and ha < last_ha:  # the publisher was gone by the time the next recorder came
        left = last["LastAt"]
    duration = round(sum(s["DurationS"] for _, s in pieces), 3)
    byte_counts = [s["Bytes"] for _, s in pieces]
    offsets = [s["AvOffsetMs"] for _, s in pieces if s["AvOffsetMs"] is not None]
    merged = {
        "UserId": last["UserId"], "MediaId": last["MediaId"], "Kind": last["Kind"],
        "Joined": pieces[0][1]["Joined"], "Left": left, "DurationS": duration,
        "FramesReceived": sum(s["FramesReceived"] for _, s in pieces),
        "FramesLost": sum(s["FramesLost"] for _, s in pieces),
        "KeyframeRequests": sum(s["KeyframeRequests"] for _, s in pieces),
        "BitrateKbps": kbps(sum(byte_counts), duration) if None not in byte_counts else None,
        "Bitrate": sorted((point for _, s in pieces for point in s["Bitrate"]), key=lambda p: p[0]),
        "Resolutions": _without_repeats(r for _, s in pieces for r in s["Resolutions"]),
        "Gaps": sorted(gaps, key=lambda g: g["At"]),
        "AvOffsetMs": offsets[-1] if offsets else None,
    }
    return {name: merged[name] for name in STREAM_FIELDS}


def merge(parts: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """One report of a task's parts (any order); None when there are none. Raises ValueError
    for a part that is not one."""
    checked = sorted((_check_part(p) for p in parts), key=lambda p: (p["Ha"], p.get("Shard", 0)))
    if not checked:
        return None
    mains = [p for p in checked if not p.get("Shard")] or checked
    first, last = mains[0], mains[-1]
    last_ha = checked[-1]["Ha"]
    pieces: dict[tuple[str, str, str], list[tuple[int, dict[str, Any]]]] = {}
    for part in checked:
        for stream in part["Streams"]:
            pieces.setdefault(_stream_key(stream), []).append((part["Ha"], stream))
    streams = [_merge_stream(sorted(p, key=lambda piece: (piece[0], piece[1]["Joined"])), last_ha)
               for p in pieces.values()]
    return {
        "TaskId": first["TaskId"], "SdkAppId": first.get("SdkAppId"), "RoomId": first.get("RoomId"),
        "StartedAt": min(p["StartedAt"] for p in mains),
        "EndedAt": last.get("EndedAt") if last.get("TaskEnded") else None,
        "HandOvers": [{"At": p["StartedAt"], "From": p["Ha"] - 1, "To": p["Ha"]}
                      for p in mains if p["Ha"] > 0 and not p.get("Shard")],
        "Streams": sorted(streams, key=lambda s: (s["Joined"], s["UserId"], s["MediaId"], s["Kind"])),
    }


def read(bucket: Bucket, task_id: str) -> dict[str, Any] | None:
    """The task's report from its parts in the internal bucket; None when it has none. A part
    that cannot be read as one is left out (and logged)."""
    parts = []
    for key, _ in bucket.listing(task_prefix(task_id)):
        if part_of_key(key) is None:
            continue
        try:
            parts.append(_check_part(json.loads(bucket.get(key))))
        except ValueError as exc:
            log.warning("report part %s left out: %s", key, exc)
    return merge(parts)


def tasks(bucket: Bucket, limit: int) -> list[dict[str, Any]]:
    """The tasks that have a report, the most recently updated first (at most `limit`): TaskId,
    UpdatedAt (ms) and how many parts. Lists every part in the bucket."""
    latest: dict[str, tuple[float, int]] = {}
    for key, stored_s in bucket.listing(PREFIX):
        task_id = key[len(PREFIX):].rsplit("/", 1)[0]
        if part_of_key(key) is not None and task_id:
            when, count = latest.get(task_id, (0.0, 0))
            latest[task_id] = (max(when, stored_s), count + 1)
    ordered = sorted(latest.items(), key=lambda item: -item[1][0])[:limit]
    return [{"TaskId": task_id, "UpdatedAt": round(when * 1000), "Parts": count}
            for task_id, (when, count) in ordered]
