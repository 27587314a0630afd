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

from chalicelib import naming
from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.tasks import StorageFile, TaskRecord

MARKER_PREFIX = "finished/"
MIX = "mix"


@dataclass(frozen=True)
class Job:
    task_id: str
    directory: str  # "<Prefix>/<TaskId>/": where the HLS is and the outputs go
    stem: str  # the output stem: output names without index and extension
    user_id: str  # "" for a mixed recording
    media_id: str  # main | aux | mix
    playlists: dict[str, str] = field(default_factory=dict)  # TrackType → playlist file name

    def output_name(self, extension: str, index: int, split: bool) -> str:
        return naming.output_name(self.stem, extension, index, split)

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


def jobs_for(task: TaskRecord) -> list[Job]:
    """The task's jobs, from the playlists Describe lists (every recorder, every ha_ prefix)."""
    want = task.params.wanted()
    if not want.anything:
        return []
    groups: dict[str, dict[str, StorageFile]] = {}
    users: dict[str, str] = {}
    for file in task.storage_files():
        name = naming.parse(file.FileName)
        if name is None:
            continue
        groups.setdefault(name.output_stem, {})[name.track_type] = file
        users[name.output_stem] = MIX if name.mixed else name.media_id or ""
    jobs = []
    for stem, files in sorted(groups.items()):
        if want.aac and not want.mp4 and not want.vod_hls and AUDIO not in files and AUDIO_VIDEO not in files:
            continue  # nothing to make: an AAC file of a stream without sound
        media = users[stem]
        first = next(iter(files.values()))
        jobs.append(Job(task.task_id, task.directory, stem, "" if media == MIX else first.UserId, media,
                        {track: f.FileName for track, f in sorted(files.items())}))
    return jobs


def kinds_of(track: str) -> frozenset[str]:
    return frozenset({AUDIO, VIDEO}) if track == AUDIO_VIDEO else frozenset({track})
