"""Runs the output jobs of ended tasks (see output_jobs): reads the HLS back from where the
recorder stored it (as TRTC does: a read failure ends the job with 310 Status 2), remuxes
one MP4/M4A part per invocation, stores it in the customer's bucket (event 310) or commits
it to VOD (311, then 312 when the task's VOD work is over), and deletes the HLS where the
task asked for MP4/AAC only. Nothing is deleted unless every file of the job was stored.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib import events, mp4_parts, playlist, retry
from chalicelib.apps import AppRegistry
from chalicelib.config import Settings
from chalicelib.events import EventQueue, FileStatus, OutputFile
from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.output_jobs import Job, jobs_for, kinds_of
from chalicelib.remux import Source, SourceError, remux_part
from chalicelib.storage import Bucket, backup_prefix, task_bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import TaskRecord

log = logging.getLogger(__name__)

STORAGE_RETRY = retry.RetryPolicy(delays_s=(1.0, 2.0), attempts=3)
OUTPUTS_STALL_S = 1800  # a job that made no progress this long has failed (a part takes 15 min at most)


@dataclass
class PostDeps:
    tasks: TaskStore
    internal: Bucket
    events: EventQueue
    settings: Settings
    apps: AppRegistry
    clock: Callable[[], float] = time.time
    retry: retry.RetryPolicy = STORAGE_RETRY
    scratch: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


def request(task: TaskRecord, tasks: TaskStore, internal: Bucket, now_s: float | None = None) -> int:
    """Drop the first marker of every output job of an ended task (once); the number of jobs.
    None while some of its files wait in the backup storage: they are requested once those
    have been delivered (chalicelib/backup.py)."""
    jobs = jobs_for(task)
    if not jobs:
        tasks.settle_outputs(task.task_id)  # nothing was recorded: nothing is owed
        return 0
    due_ms = int(((time.time() if now_s is None else now_s) + OUTPUTS_STALL_S) * 1000)
    if internal.listing(backup_prefix(task.task_id), limit=1) or not tasks.start_outputs(task.task_id, len(jobs),
                                                                                          due_ms):
        return 0
    for job in jobs:
        internal.put(job.marker_key(1), job.marker(1), "application/json")
    log.info("output jobs requested", extra={"task_id": task.task_id, "jobs": len(jobs)})
    return len(jobs)


def run(marker_body: bytes, deps: PostDeps) -> None:
    """One invocation of a job: one part (or the HLS commit and the first part)."""
    job, part = Job.from_marker(marker_body)
    task = deps.tasks.get(job.task_id)
    if task is None:
        log.warning("output job of an unknown task dropped", extra={"task_id": job.task_id})
        return
    deps.tasks.outputs_progress(job.task_id, int((deps.clock() + OUTPUTS_STALL_S) * 1000))
    _JobRun(job, part, task, deps).run()


def sweep(deps: PostDeps, now_s: float) -> int:
    """Ended tasks whose outputs are overdue: request those nobody requested (the recorder died
    between the task's end and the request), and report the jobs that stopped making progress
    (their function failed for good: see the outputs dead-letter queue) as failed — 310 Status 2
    or a failed 311 — so no job ends in silence. How many tasks it handled."""
    handled = 0
    for task_id in deps.tasks.outputs_due(int(now_s * 1000)):
        try:
            task = deps.tasks.get(task_id)
            if task is None:
                continue
            if task.output_jobs is None:
                log.warning("output jobs never requested: requesting them now", extra={"task_id": task_id})
                request(task, deps.tasks, deps.internal, now_s)
            else:
                for job in jobs_for(task):
                    if job.stem not in (task.outputs_finished or ()):
                        _JobRun(job, 0, task, deps).failed("the output job stopped making progress")
            handled += 1
        except Exception:  # the next sweep tries again; the other tasks must not wait for this one
            log.exception("overdue outputs could not be handled", extra={"task_id": task_id})
    return handled


class _JobRun:
    def __init__(self, job: Job, part: int, task: TaskRecord, deps: PostDeps) -> None:
        self.job, self.part, self.task, self.deps = job, part, task, deps
        self.want = task.params.wanted()
        self.vod = task.params.vod
        self.bucket = task_bucket(task, deps.settings, deps.internal)
        self.ok = True

    # ---- the job
    def run(self) -> None:
        try:
            playlists = {track: playlist.parse(self._read(name).decode())
                         for track, name in self.job.playlists.items()}
        except (SourceError, playlist.PlaylistError, UnicodeDecodeError) as exc:
            self.failed(f"the recording could not be read back: {exc}")
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
                    self.failed(f"a segment could not be read back: {exc}")
                    return
        if more:
            self.deps.internal.put(self.job.marker_key(self.part + 1), self.job.marker(self.part + 1),
                                   "application/json")
            return
        if self.ok and not self.want.keep_hls:
            self._delete_hls(playlists)
        self._job_over()

    def _make_part(self, playlists: dict[str, playlist.Playlist], work: Path) -> bool:
        """Make this invocation's part; True when more parts follow."""
        audio_only = self.want.aac and not self.want.mp4
        sources = []
        for track, listed in playlists.items():
            kinds = kinds_of(track) & ({AUDIO} if audio_only else {AUDIO, VIDEO})
            if kinds:
                sources.append(Source(listed, frozenset(kinds), self._read))
        if not sources:
            return False
        lead = next((s for s in sources if VIDEO in s.kinds), sources[0])
        parts = mp4_parts.plan(lead.playlist, [s.playlist for s in sources if s is not lead],
                               self.task.params.record.MaxMediaFileDuration, self.deps.settings.mp4_split_bytes)
        if self.part > len(parts):
            return False
        part = parts[self.part - 1]
        extension = "m4a" if audio_only else "mp4"
        name = self.job.output_name(extension, part.index, len(parts) > 1)
        result = remux_part(sources, part, work / name, "ipod" if audio_only else "mp4")
        if result is not None:
            track = AUDIO_VIDEO if len(result.kinds) > 1 else next(iter(result.kinds))
            made = self._output(name, track, result.start_ms, result.end_ms)
            if self.vod is not None:
                self._commit(made, result.path, [])
            else:
                self._store(made, result.path)
        return self.part < len(parts)

    def _output(self, name: str, track: str, start_ms: int, end_ms: int) -> OutputFile:
        return OutputFile(name, self.job.user_id, track, self.job.media_id, start_ms, end_ms)

    # ---- storage
    def _read(self, name: str) -> bytes:
        try:
            return retry.call(lambda: self.bucket.get(self.job.directory + name), self.deps.retry)
        except Exception as exc:  # botocore, network: the recording cannot be read back
            raise SourceError(f"{name}: {retry.error_code(exc)}") from None

    def _store(self, made: OutputFile, path: Path) -> None:
        status = FileStatus.STORED
        try:
            retry.call(lambda: self.bucket.upload(self.job.directory + made.name, path), self.deps.retry)
        except Exception:  # botocore, network
            log.exception("the output file could not be stored", extra={"task_id": self.job.task_id})
            status, self.ok = FileStatus.NOT_STORED, False
        self._emit(events.mp4_stop(made, status))

    def _delete_hls(self, playlists: dict[str, playlist.Playlist]) -> None:
        keys = [self.job.directory + name for name in self.job.playlists.values()]
        keys += [self.job.directory + seg.name for listed in playlists.values() for seg in listed.segments]
        try:
            self.bucket.delete(keys)
        except Exception:  # botocore, network: the outputs are stored, only the HLS stays behind
            log.warning("the HLS could not be deleted after the outputs were stored",
                        extra={"task_id": self.job.task_id})

    # ---- VOD
    def _vod_credentials(self) -> tuple[str, str]:
        app = self.deps.apps.get_app(self.task.sdkappid)
        for secret_id in app.secret_ids if app else ():
            credential = self.deps.apps.get_credential(secret_id)
            if credential is not None:
                return credential.secret_id, credential.secret_key
        raise LookupError("the app has no API credentials for VOD")

    def _commit(self, made: OutputFile, media: Path, extra: list[tuple[str, Path]]) -> None:
        """Send a file (and the segments of a playlist) to VOD, and report it with 311."""
        from chalicelib import vod

        assert self.vod is not None
        name = made.name
        if self.vod.UserDefineRecordId:  # spec §2.2: the user's prefix, joined by "__UserDefine_u_"
            name = f"{self.vod.UserDefineRecordId}__UserDefine_u_{name}"
        try:
            secret_id, secret_key = self._vod_credentials()
            committed = vod.upload(self.vod, secret_id, secret_key, self.deps.settings, media, name, extra,
                               policy=self.deps.retry)
        except (vod.VodError, LookupError) as exc:
            self.ok = False
            self._emit(events.vod_commit(made, "", "", str(exc)))
            return
        self._emit(events.vod_commit(made, committed.file_id, committed.media_url, ""))

    def _commit_hls(self, track: str, name: str, listed: playlist.Playlist, work: Path) -> None:
        made = self._output(name, track, listed.start_ms, listed.end_ms)
        try:
            (work / name).write_bytes(self._read(name))
            extra = []
            for seg in listed.segments:
                (work / seg.name).write_bytes(self._read(seg.name))
                extra.append((seg.name, work / seg.name))
        except SourceError as exc:
            self.ok = False
            self._emit(events.vod_commit(made, "", "", f"could not be read back: {exc}"))
            return
        self._commit(made, work / name, extra)
        for _, path in extra:
            path.unlink(missing_ok=True)

    # ---- the end of a job
    def failed(self, reason: str) -> None:
        log.error("output job failed: %s", reason, extra={"task_id": self.job.task_id})
        self.ok = False
        if self.vod is not None:
            self._emit(events.vod_commit(self._output(self.job.stem, AUDIO_VIDEO, 0, 0), "", "", reason))
        else:
            self._emit(events.mp4_failed(self.job.stem))
        self._job_over()

    def _job_over(self) -> None:
        counted = self.deps.tasks.output_job_done(self.job.task_id, self.job.stem, not self.ok)
        if counted is None:
            return  # counted already (as failed, by the sweep)
        done, total, failed = counted
        if self.vod is not None and done == total:
            self._emit(events.vod_stop(failed=bool(failed)))

    def _emit(self, event: events.Event) -> None:
        self.deps.events.publish(event, self.task, int(self.deps.clock() * 1000))
