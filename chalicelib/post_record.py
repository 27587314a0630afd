"""Runs the output jobs of ended tasks (see output_jobs): reads the HLS back from where the
recorder stored it (as TRTC does: a read failure ends the job with 310 Status 2), remuxes
one MP4/M4A part per invocation, stores it in the customer's bucket (event 310) or commits
it to VOD (311, then 312 when the task's VOD work is over), and deletes the HLS where the
task asked for MP4/AAC only. Nothing is deleted unless every file of the job was stored.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import hls_index, mp4_parts
from chalicelib.apps import AppRegistry
from chalicelib.config import Settings
from chalicelib.events import MP4_STOP, VOD_COMMIT, VOD_STOP, EventQueue, build_event
from chalicelib.models import StorageParams
from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.output_jobs import Job, Wanted, jobs_for, kinds_of, wanted
from chalicelib.remux import Source, SourceError, remux_part
from chalicelib.storage import storage_client
from chalicelib.task_store import TaskRecord, TaskStore

log = logging.getLogger(__name__)

READ_ATTEMPTS = 3
STATUS_OK, STATUS_NOT_STORED, STATUS_FAILED = 0, 1, 2


@dataclass
class PostDeps:
    tasks: TaskStore
    internal: Any  # S3 client of the internal bucket
    events: EventQueue
    settings: Settings
    apps: AppRegistry
    clock: Callable[[], float] = time.time
    retry_wait_s: float = 1.0
    vod_upload: Callable[..., Any] | None = None  # chalicelib.vod.upload unless a test swaps the endpoint
    scratch: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


def request(task: TaskRecord, tasks: TaskStore, internal: Any, bucket: str) -> int:
    """Drop the first marker of every output job of an ended task (once); the number of jobs."""
    jobs = jobs_for(task, wanted(json.loads(task.params_json)))
    if not jobs or not tasks.start_outputs(task.task_id, len(jobs)):
        return 0
    for job in jobs:
        internal.put_object(Bucket=bucket, Key=job.marker_key(1), Body=job.marker(1),
                            ContentType="application/json")
    log.info("output jobs requested", extra={"task_id": task.task_id, "jobs": len(jobs)})
    return len(jobs)


def run(marker_body: bytes, deps: PostDeps) -> None:
    """One invocation of a job: one part (or the HLS commit and the first part)."""
    job, part = Job.from_marker(marker_body)
    task = deps.tasks.get(job.task_id)
    if task is None:
        log.warning("output job of an unknown task dropped", extra={"task_id": job.task_id})
        return
    _JobRun(job, part, task, deps).run()


class _JobRun:
    def __init__(self, job: Job, part: int, task: TaskRecord, deps: PostDeps) -> None:
        self.job, self.part, self.task, self.deps = job, part, task, deps
        self.params = json.loads(task.params_json)
        self.want: Wanted = wanted(self.params)
        storage = StorageParams.model_validate(self.params["StorageParams"])
        self.vod = storage.CloudVod.TencentVod if storage.CloudVod is not None else None
        if storage.CloudStorage is not None:
            self.client, self.bucket = storage_client(storage.CloudStorage, deps.settings), storage.CloudStorage.Bucket
        else:
            self.client, self.bucket = deps.internal, deps.settings.internal_bucket
        self.ok = True

    # ---- the job
    def run(self) -> None:
        try:
            playlists = {track: hls_index.parse(self._read(name).decode())
                         for track, name in self.job.playlists.items()}
        except (SourceError, hls_index.PlaylistError, UnicodeDecodeError) as exc:
            self._failed(f"the recording could not be read back: {exc}")
            return
        with tempfile.TemporaryDirectory(dir=self.deps.scratch) as tmp:
            work = Path(tmp)
            if self.part == 1 and self.want.vod_hls:
                for track, name in self.job.playlists.items():
                    self._commit_hls(track, name, playlists[track], work)
            more = False
            if self.want.mp4 or self.want.aac:
                try:
                    more = self._make_part(playlists, work)
                except SourceError as exc:
                    self._failed(f"a segment could not be read back: {exc}")
                    return
        if more:
            self.deps.internal.put_object(Bucket=self.deps.settings.internal_bucket,
                                          Key=self.job.marker_key(self.part + 1),
                                          Body=self.job.marker(self.part + 1), ContentType="application/json")
            return
        if self.ok and not self.want.keep_hls:
            self._delete_hls(playlists)
        self._job_over()

    def _make_part(self, playlists: dict[str, hls_index.Playlist], work: Path) -> bool:
        """Make this invocation's part; True when more parts follow."""
        audio_only = self.want.aac and not self.want.mp4
        sources = []
        for track, playlist in playlists.items():
            kinds = kinds_of(track) & ({AUDIO} if audio_only else {AUDIO, VIDEO})
            if kinds:
                sources.append(Source(playlist, frozenset(kinds), self._fetch))
        if not sources:
            return False
        lead = next((s for s in sources if VIDEO in s.kinds), sources[0])
        parts = mp4_parts.plan(lead.playlist, [s.playlist for s in sources if s is not lead],
                               self._max_minutes(), self.deps.settings.mp4_split_bytes)
        if self.part > len(parts):
            return False
        part = parts[self.part - 1]
        extension = "m4a" if audio_only else "mp4"
        name = self.job.output_name(extension, part.index, len(parts) > 1)
        result = remux_part(sources, part, work / name, "ipod" if audio_only else "mp4")
        if result is not None:
            track = AUDIO_VIDEO if len(result.kinds) > 1 else next(iter(result.kinds))
            if self.vod is not None:
                self._commit_file(result.path, name, track, result.start_ms, result.end_ms)
            else:
                self._store_file(result.path, name, track, result.start_ms, result.end_ms)
        return self.part < len(parts)

    def _max_minutes(self) -> int:
        return int((self.params.get("RecordParams") or {}).get("MaxMediaFileDuration") or 1440)

    # ---- storage
    def _read(self, name: str) -> bytes:
        key = self.job.directory + name
        for attempt in range(READ_ATTEMPTS):
            try:
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                return body
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                if code in ("NoSuchKey", "404", "AccessDenied", "NoSuchBucket") or attempt == READ_ATTEMPTS - 1:
                    raise SourceError(f"{name}: {code or type(exc).__name__}") from None
                time.sleep(self.deps.retry_wait_s * 2 ** attempt)
        raise AssertionError("unreachable")

    _fetch = _read

    def _store_file(self, path: Path, name: str, track: str, start_ms: int, end_ms: int) -> None:
        key = self.job.directory + name
        status = STATUS_OK
        for attempt in range(READ_ATTEMPTS):
            try:
                self.client.upload_file(str(path), self.bucket, key)
                break
            except (ClientError, BotoCoreError, OSError):
                if attempt == READ_ATTEMPTS - 1:
                    log.exception("the output file could not be stored", extra={"task_id": self.job.task_id})
                    status, self.ok = STATUS_NOT_STORED, False
                else:
                    time.sleep(self.deps.retry_wait_s * 2 ** attempt)
        message = {"FileName": name, "UserId": self.job.user_id, "TrackType": track, "MediaId": self.job.media_id,
                   "StartTimeStamp": start_ms, "EndTimeStamp": end_ms}
        self._emit(MP4_STOP, {"Status": status, "FileList": [name] if status == STATUS_OK else [],
                              "FileMessage": [message] if status == STATUS_OK else []}, f"310-{name}")

    def _delete_hls(self, playlists: dict[str, hls_index.Playlist]) -> None:
        keys = [self.job.directory + name for name in self.job.playlists.values()]
        keys += [self.job.directory + seg.name for pl in playlists.values() for seg in pl.segments]
        for start in range(0, len(keys), 1000):
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            except (ClientError, BotoCoreError):
                log.warning("the HLS could not be deleted after the outputs were stored",
                            extra={"task_id": self.job.task_id})
                return

    # ---- VOD
    def _vod_credentials(self) -> tuple[str, str]:
        app = self.deps.apps.get_app(self.task.sdkappid)
        for secret_id in app.secret_ids if app else ():
            credential = self.deps.apps.get_credential(secret_id)
            if credential is not None:
                return credential.secret_id, credential.secret_key
        raise LookupError("the app has no API credentials for VOD")

    def _vod(self, media: Path, name: str, extra: list[tuple[str, Path]]) -> tuple[Any, str]:
        from chalicelib import vod

        upload = self.deps.vod_upload or vod.upload
        assert self.vod is not None
        if self.vod.UserDefineRecordId:  # spec §2.2: the user's prefix, joined by "__UserDefine_u_"
            name = f"{self.vod.UserDefineRecordId}__UserDefine_u_{name}"
        try:
            secret_id, secret_key = self._vod_credentials()
            return upload(self.vod, secret_id, secret_key, self.deps.settings, media, name, extra), ""
        except (vod.VodError, LookupError) as exc:
            self.ok = False
            return None, str(exc)

    def _commit_file(self, path: Path, name: str, track: str, start_ms: int, end_ms: int) -> None:
        media, error = self._vod(path, name, [])
        self._emit_vod(name, track, start_ms, end_ms, media, error)

    def _commit_hls(self, track: str, name: str, playlist: hls_index.Playlist, work: Path) -> None:
        try:
            (work / name).write_bytes(self._read(name))
            extra = []
            for seg in playlist.segments:
                (work / seg.name).write_bytes(self._read(seg.name))
                extra.append((seg.name, work / seg.name))
        except SourceError as exc:
            self.ok = False
            self._emit_vod(name, track, playlist.start_ms, playlist.end_ms, None, f"could not be read back: {exc}")
            return
        media, error = self._vod(work / name, name, extra)
        self._emit_vod(name, track, playlist.start_ms, playlist.end_ms, media, error)
        for _, path in extra:
            path.unlink(missing_ok=True)

    def _emit_vod(self, name: str, track: str, start_ms: int, end_ms: int, media: Any, error: str) -> None:
        info = {"UserId": self.job.user_id, "TrackType": track, "MediaId": self.job.media_id,
                "FileId": media.file_id if media else "", "VideoUrl": media.media_url if media else "",
                "CacheFile": name, "StartTimeStamp": start_ms, "EndTimeStamp": end_ms}
        payload: dict[str, Any] = {"Status": STATUS_OK if media else STATUS_FAILED, "TencentVod": info}
        if not media:
            payload["Errmsg"] = error
        self._emit(VOD_COMMIT, payload, f"311-{name}")

    # ---- the end of a job
    def _failed(self, reason: str) -> None:
        log.error("output job failed: %s", reason, extra={"task_id": self.job.task_id})
        self.ok = False
        if self.vod is not None:
            self._emit_vod(self.job.stem, AUDIO_VIDEO, 0, 0, None, reason)
        else:
            self._emit(MP4_STOP, {"Status": STATUS_FAILED, "FileList": [], "FileMessage": []},
                       f"310-failed-{self.job.stem}")
        self._job_over()

    def _job_over(self) -> None:
        done, total, failed = self.deps.tasks.output_job_done(self.job.task_id, not self.ok)
        if self.vod is not None and done == total:
            self._emit(VOD_STOP, {"Status": 1 if failed else 0}, "312")

    def _emit(self, event_type: int, payload: dict[str, Any], key: str) -> None:
        now_ms = int(self.deps.clock() * 1000)
        self.deps.events.publish(build_event(event_type, self.task, payload, now_ms), self.task.sdkappid, key)
