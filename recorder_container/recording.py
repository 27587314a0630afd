"""Single-stream recording: which publisher streams are subscribed, where their frames go,
and how each recorded stream becomes HLS in the customer's storage.

One `HlsStream` per (UserId, MediaId, Type): a segment writer thread, its playlist, and its
uploads. Subscriptions follow the room (publishers come and go) and the task (Modify).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from chalicelib import events
from chalicelib.events import Event
from chalicelib.models import RecordParams
from chalicelib.naming import AUDIO, AUDIO_VIDEO, MAIN, VIDEO, TaskNaming, playlist_name, segment_name
from chalicelib.playlist import Segment, render
from chalicelib.subscription import Selected
from chalicelib.tasks import StorageFile
from recorder_container.hls_writer import SegmentDone, StreamWriter, WriterSpec
from recorder_container.janus import JanusSession
from recorder_container.room import RoomAddress
from recorder_container.subscriber import FeedSubscriber, subscribe_missing
from recorder_container.uploader import Upload, Uploader

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class StreamKey:
    user_id: str  # "" for the mixed stream
    media_id: str
    track_type: str  # audio | video | audio_video
    mixed: bool = False


def stream_key(sel: Selected, av_merge: bool) -> StreamKey:
    if av_merge and sel.media_id == MAIN:
        return StreamKey(sel.user_id, MAIN, AUDIO_VIDEO)
    return StreamKey(sel.user_id, sel.media_id, sel.kind)


@dataclass
class HlsStream:
    """One recorded stream: its writer thread, playlist and uploads (loop side)."""

    key: StreamKey
    naming: TaskNaming
    uploader: Uploader
    emit: Emit
    put_file: Callable[[StorageFile], None]
    loop: asyncio.AbstractEventLoop
    segments: list[Segment] = field(default_factory=list)
    start_ms: int | None = None
    keyframe: Callable[[], None] = lambda: None
    writer: StreamWriter | None = None
    _announced: bool = False

    @property
    def stem(self) -> str:
        if self.key.mixed:
            return self.naming.mixed_stem()
        return self.naming.stream_stem(self.key.user_id, self.key.media_id, self.key.track_type)

    @property
    def playlist_name(self) -> str:
        return playlist_name(self.stem)

    def open(self, spec: WriterSpec) -> None:
        def threadsafe(fn: Callable[..., None]) -> Callable[..., None]:
            def call(*args: Any) -> None:
                self.loop.call_soon_threadsafe(fn, *args)
            return call

        self.writer = StreamWriter(spec, threadsafe(self._segment_done), threadsafe(self._first_sample),
                                   threadsafe(lambda: self.keyframe()))

    def _first_sample(self, wall: float) -> None:
        self.start_ms = round(wall * 1000)

    def _segment_done(self, done: SegmentDone) -> None:
        name = segment_name(self.stem, done.start_ms)
        self.segments.append(Segment(name, done.start_ms, done.duration_ms, done.size, done.width, done.height,
                                     done.discontinuity))
        self.uploader.put(Upload(self.naming.directory + name, "video/mp2t", path=done.path))
        self._upload_playlist(ended=False)
        if not self._announced:
            self._announced = True
            begin = self.start_ms if self.start_ms is not None else done.start_ms
            file = StorageFile(self.playlist_name, self.key.user_id, self.key.track_type, begin)
            self.put_file(file)
            self.emit(events.file_slice(file))

    def _upload_playlist(self, ended: bool) -> None:
        if not self.segments:
            return
        text = render(self.segments, self.start_ms or self.segments[0].start_ms, ended)
        first = len(self.segments) == 1 and not ended
        on_done = (lambda: self.emit(events.file_info(self.playlist_name))) if first else None
        self.uploader.put(Upload(self.naming.directory + self.playlist_name, "application/vnd.apple.mpegurl",
                                 body=text.encode(), on_done=on_done))

    async def finish(self) -> None:
        """Close the open segment and publish the final playlist (with ENDLIST)."""
        if self.writer is not None:
            await asyncio.to_thread(self.writer.finish)
            await asyncio.sleep(0)  # let the last segment's callback run on the loop
        self._upload_playlist(ended=True)


@dataclass
class RecordingContext:
    """What a recording needs from the recorder around it."""

    naming: TaskNaming
    record: RecordParams
    uploader: Uploader
    address: RoomAddress
    ice_servers: tuple[dict[str, Any], ...]
    emit: Emit
    put_file: Callable[[StorageFile], None]
    on_media: Callable[[], None]
    work_dir: Path
    segment_s: float = 12.0
    audio_channels: int = 1


class SingleStreamRecording:
    """Subscribes to the selected streams and writes each as its own HLS stream."""

    def __init__(self, ctx: RecordingContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.streams: dict[StreamKey, HlsStream] = {}
        self.subscribers: dict[str, FeedSubscriber] = {}
        self._routes: dict[tuple[str, str], tuple[StreamKey, str]] = {}  # (feed, mid) → stream, kind
        self._consumers: set[asyncio.Task[None]] = set()
        self._media_seen = False
        ctx.work_dir.mkdir(parents=True, exist_ok=True)

    async def reconcile(self, janus: JanusSession, selected: list[Selected]) -> None:
        """Subscribe to the selected streams; drop subscriptions no longer selected."""
        want: dict[str, list[str]] = {}
        self._routes = {}
        for sel in selected:
            want.setdefault(sel.user_id, []).append(sel.mid)
            key = stream_key(sel, self.ctx.record.AvMerge == 1)
            self._routes[(sel.user_id, sel.mid)] = (key, sel.kind)
            self._ensure_stream(key)
        for feed, sub in list(self.subscribers.items()):
            if tuple(want.get(feed, ())) != sub.mids:
                del self.subscribers[feed]
                await sub.close()
        await subscribe_missing(self.subscribers, want, lambda feed, mids: FeedSubscriber(
            janus, self.ctx.address, feed, mids, self.ctx.ice_servers, functools.partial(self._on_track, feed)))

    def _ensure_stream(self, key: StreamKey) -> HlsStream:
        stream = self.streams.get(key)
        if stream is None:
            stream = HlsStream(key, self.ctx.naming, self.ctx.uploader, self.ctx.emit, self.ctx.put_file, self.loop)
            stream.open(WriterSpec(
                name=stream.stem, audio=key.track_type in (AUDIO, AUDIO_VIDEO),
                video=key.track_type in (VIDEO, AUDIO_VIDEO), work_dir=self.ctx.work_dir,
                segment_s=self.ctx.segment_s, audio_channels=self.ctx.audio_channels))
            self.streams[key] = stream
        return stream

    def _on_track(self, feed: str, mid: str, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        route = self._routes.get((feed, mid))
        if route is None:
            return
        key, kind = route
        stream = self.streams[key]
        if kind == VIDEO:
            sub = self.subscribers.get(feed)

            def keyframe() -> None:
                current = self.subscribers.get(feed) or sub
                if current is not None:
                    asyncio.ensure_future(current.request_keyframe(mid))

            stream.keyframe = keyframe
        task = asyncio.create_task(self._consume(stream, kind, track), name=f"consume-{feed}-{mid}")
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _consume(self, stream: HlsStream, kind: str, track: MediaStreamTrack) -> None:
        writer = stream.writer
        assert writer is not None
        put = writer.video if kind == VIDEO else writer.audio
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not self._media_seen:
                    self._media_seen = True
                    self.ctx.on_media()
                put(frame, time.time(), track)

    async def drop_subscriptions(self) -> None:
        """Close every subscription (Janus went away); the streams stay open for the next ones."""
        for sub in list(self.subscribers.values()):
            await sub.close()
        self.subscribers.clear()
        for task in list(self._consumers):
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)

    async def log_stats(self) -> None:
        """One log line per stream: frames written and dropped, RTP packets received and lost."""
        packets: dict[StreamKey, list[int]] = {}
        for feed, sub in self.subscribers.items():
            for mid, (received, lost) in (await sub.packet_stats()).items():
                route = self._routes.get((feed, mid))
                if route is not None:
                    totals = packets.setdefault(route[0], [0, 0])
                    totals[0] += received
                    totals[1] += lost
        for key, stream in self.streams.items():
            received, lost = packets.get(key, [0, 0])
            log.info("stream stats", extra={
                "user_id": key.user_id, "media_id": key.media_id, "track_type": key.track_type,
                **(dataclasses.asdict(stream.writer.stats) if stream.writer else {}),
                "rtp_received": received, "rtp_lost": lost})

    async def close(self) -> None:
        """Stop receiving, close the open segments, publish the final playlists."""
        try:
            await self.log_stats()
        except Exception:
            log.warning("stream stats unavailable", exc_info=True)
        await self.drop_subscriptions()
        await asyncio.gather(*(s.finish() for s in self.streams.values()))
