"""One recorded stream as HLS in the task's storage: its segment writer (a thread of its
own), its playlist, its uploads, and what Describe and the callbacks learn about it — the
same for a user's stream (single-stream) and for the mix.

A stream whose publisher left is retired: its writer closes its last segment and its thread
ends; the playlist stays open, and a new writer continues it (after a discontinuity) when
the publisher comes back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib import events
from chalicelib.events import Event
from chalicelib.models import RecordParams
from chalicelib.naming import TaskNaming, playlist_name, segment_name
from chalicelib.playlist import Segment, render
from chalicelib.tasks import StorageFile
from recorder_container.background import Background
from recorder_container.hls_writer import Resume, SegmentDone, StreamWriter, WriterSpec
from recorder_container.room import Room
from recorder_container.uploader import Upload, Uploader


@dataclass(frozen=True)
class StreamKey:
    user_id: str  # "" for the mixed stream
    media_id: str
    track_type: str  # audio | video | audio_video
    mixed: bool = False


@dataclass
class RecordingContext:
    """What a recording needs from the recorder around it."""

    naming: TaskNaming
    record: RecordParams
    room: Room
    uploader: Uploader
    emit: Callable[[Event], None]
    put_file: Callable[[StorageFile], None]
    on_media: Callable[[], None]
    background: Background
    work_dir: Path
    segment_s: float
    audio_channels: int = 1


@dataclass
class HlsStream:
    """One recorded stream: its writer thread, playlist and uploads. Owned by the event loop;
    the writer's thread reaches it only through `call_soon_threadsafe`."""

    key: StreamKey
    ctx: RecordingContext
    loop: asyncio.AbstractEventLoop
    segments: list[Segment] = field(default_factory=list)
    start_ms: int | None = None
    keyframe: Callable[[], None] = lambda: None
    on_stored: Callable[[], None] = lambda: None  # one of its segment files reached storage
    writer: StreamWriter | None = None
    files_pending: int = 0  # segment files written and not yet stored
    _announced: bool = False
    _spec: WriterSpec | None = None
    _resume: Resume | None = None
    _past_stats: dict[str, int] = field(default_factory=dict)  # of the writers it retired

    @property
    def stem(self) -> str:
        if self.key.mixed:
            return self.ctx.naming.mixed_stem()
        return self.ctx.naming.stream_stem(self.key.user_id, self.key.media_id, self.key.track_type)

    @property
    def playlist_name(self) -> str:
        return playlist_name(self.stem)

    def open(self, spec: WriterSpec) -> StreamWriter:
        """Start a writer (again, after `retire`: it continues the stream's timeline and files)."""
        def threadsafe(fn: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                self.loop.call_soon_threadsafe(fn, *args)
            return call

        if self.writer is None:
            self._spec = spec
            self.writer = StreamWriter(spec, threadsafe(self._segment_done), threadsafe(self._first_sample),
                                       threadsafe(lambda: self.keyframe()), resume=self._resume)
        return self.writer

    def reopen(self) -> StreamWriter:
        """The writer, started again if the stream was retired."""
        assert self._spec is not None, "open() first"
        return self.open(self._spec)

    async def retire(self) -> None:
        """Close the open segment and end the writer's thread; the playlist stays open."""
        writer = self.writer
        if writer is None:
            return
        await asyncio.to_thread(writer.finish)
        await asyncio.sleep(0)  # let the last segment's callback run on the loop
        self._resume = writer.resume_point() or self._resume
        self._past_stats = self.stats()
        self.writer = None

    def stats(self) -> dict[str, int]:
        """Frames written and dropped, over every writer the stream had."""
        totals = dict(self._past_stats)
        if self.writer is not None:
            for name, value in dataclasses.asdict(self.writer.stats).items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def _first_sample(self, wall: float) -> None:
        if self.start_ms is None:
            self.start_ms = round(wall * 1000)

    def _segment_done(self, done: SegmentDone) -> None:
        name = segment_name(self.stem, done.start_ms)
        self.segments.append(Segment(name, done.start_ms, done.duration_ms, done.size, done.width, done.height,
                                     done.discontinuity))
        self.files_pending += 1
        self.ctx.uploader.put(Upload(self.ctx.naming.directory + name, "video/mp2t", path=done.path,
                                     on_done=self._stored))
        self._upload_playlist(ended=False)
        if not self._announced:
            self._announced = True
            begin = self.start_ms if self.start_ms is not None else done.start_ms
            file = StorageFile(self.playlist_name, self.key.user_id, self.key.track_type, begin)
            self.ctx.put_file(file)
            self.ctx.emit(events.file_slice(file))

    def _upload_playlist(self, ended: bool) -> None:
        if not self.segments:
            return
        text = render(self.segments, self.start_ms or self.segments[0].start_ms, ended)
        first = len(self.segments) == 1 and not ended
        on_done = (lambda: self.ctx.emit(events.file_info(self.playlist_name))) if first else None
        self.ctx.uploader.put(Upload(self.ctx.naming.directory + self.playlist_name, "application/vnd.apple.mpegurl",
                                     body=text.encode(), on_done=on_done))

    def _stored(self) -> None:
        self.files_pending -= 1
        self.on_stored()

    async def finish(self) -> None:
        """Close the open segment and publish the final playlist (with ENDLIST)."""
        await self.retire()
        self._upload_playlist(ended=True)


def clear_work_dir(work_dir: Path, streams: Iterable[HlsStream]) -> None:
    """Remove a closed recording's work directory once every file its streams wrote is stored
    (the uploader deletes each). Only ever an empty directory: a file that did not reach
    storage, or a shard's directory, keeps it."""
    if any(s.files_pending or s.writer is not None for s in streams):
        return
    with contextlib.suppress(OSError):  # not empty, or gone already
        work_dir.rmdir()
