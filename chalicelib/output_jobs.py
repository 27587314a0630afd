"""What a finished task still owes after its HLS is stored: MP4 / AAC files (OutputFormat
1–4) or a VOD commit (TencentVod.MediaType 0–4), as jobs — one per user and MediaId in
single-stream (their audio and video muxed together), one for a mixed recording.

When a task ends, its last recorder (or the reaper) drops one small "stream finished"
marker per job into the internal bucket; the S3 event of that marker runs the job. A job
makes one part (one file) per invocation and drops the marker of the next part, so no
invocation outgrows Lambda however long the recording. Pure planning lives here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.task_store import StorageFile, TaskRecord

MARKER_PREFIX = "finished/"
MIX = "mix"


@dataclass(frozen=True)
class Wanted:
    """What a task's parameters ask for besides the HLS."""

    mp4: bool = False
    aac: bool = False
    keep_hls: bool = True  # OutputFormat 3 and 4: the HLS is deleted once the MP4/AAC is stored
    vod: bool = False
    vod_hls: bool = False  # MediaType 1, 3, 4: the playlists themselves go to VOD

    @property
    def anything(self) -> bool:
        return self.mp4 or self.aac or self.vod_hls


def wanted(params: dict[str, Any]) -> Wanted:
    storage = params.get("StorageParams", {})
    vod = (storage.get("CloudVod") or {}).get("TencentVod")
    if vod is not None:  # OutputFormat is ignored for VOD (spec §2.2)
        media_type = int(vod.get("MediaType") or 0)
        return Wanted(mp4=media_type in (0, 3), aac=media_type in (2, 4), keep_hls=False, vod=True,
                      vod_hls=media_type in (1, 3, 4))
    fmt = int((params.get("RecordParams") or {}).get("OutputFormat") or 0)
    return Wanted(mp4=fmt in (1, 3), aac=fmt in (2, 4), keep_hls=fmt in (0, 1, 2))


@dataclass(frozen=True)
class Job:
    task_id: str
    directory: str  # "<Prefix>/<TaskId>/": where the HLS is and the outputs go
    stem: str  # output name without index and extension
    user_id: str  # "" for a mixed recording
    media_id: str  # main | aux | mix
    playlists: dict[str, str] = field(default_factory=dict)  # TrackType → playlist file name

    def output_name(self, extension: str, index: int, split: bool) -> str:
        """`<stem>[_<Index>].<ext>`: the index only when the file was split (spec §7)."""
        return f"{self.stem}_{index}.{extension}" if split else f"{self.stem}.{extension}"

    def marker_key(self, part: int) -> str:
        # the TaskId goes in verbatim: S3 events hand it back URL-encoded ("+" stays a "+" only after decoding)
        return f"{MARKER_PREFIX}{self.task_id}/{self.stem}/part-{part}.json"

    def marker(self, part: int) -> bytes:
        """The body of the marker that makes `part` of this job."""
        return json.dumps({"Job": asdict(self), "Part": part}).encode()

    @classmethod
    def from_marker(cls, body: bytes) -> tuple[Job, int]:
        data = json.loads(body)
        return cls(**data["Job"]), int(data["Part"])


def directory_of(task: TaskRecord) -> str:
    storage = json.loads(task.params_json).get("StorageParams", {})
    prefix = "".join(f"{p}/" for p in (storage.get("CloudStorage") or {}).get("FileNamePrefix") or ())
    return f"{prefix}{task.task_id}/"


def jobs_for(task: TaskRecord, want: Wanted) -> list[Job]:
    """The task's jobs, from the playlists Describe lists (every recorder, every ha_ prefix)."""
    if not want.anything:
        return []
    groups: dict[str, dict[str, StorageFile]] = {}
    for file in task.storage_files():
        stem, track = _split(file.FileName, mixed=task.record_mode == 2)
        groups.setdefault(stem, {})[track] = file
    jobs = []
    for stem, files in sorted(groups.items()):
        if want.aac and not want.mp4 and not want.vod_hls and AUDIO not in files and AUDIO_VIDEO not in files:
            continue  # nothing to make: an AAC file of a stream without sound
        first = next(iter(files.values()))
        media = MIX if task.record_mode == 2 else stem.rsplit("__UserId_e_", 1)[1]
        jobs.append(Job(task.task_id, directory_of(task), stem, "" if media == MIX else first.UserId, media,
                        {track: f.FileName for track, f in sorted(files.items())}))
    return jobs


def _split(playlist: str, mixed: bool) -> tuple[str, str]:
    name = playlist.removesuffix(".m3u8")
    if mixed:
        return name, AUDIO_VIDEO
    for track in (AUDIO_VIDEO, AUDIO, VIDEO):  # "audio_video" first: it ends in "_video"
        if name.endswith(f"_{track}"):
            return name[: -len(track) - 1], track
    return name, AUDIO_VIDEO


def kinds_of(track: str) -> frozenset[str]:
    return frozenset({AUDIO, VIDEO}) if track == AUDIO_VIDEO else frozenset({track})
