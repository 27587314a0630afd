"""Single-stream recording: every selected publisher stream written as its own HLS stream —
one `HlsStream` per (UserId, MediaId, Type); with AvMerge a user's main audio and video share
one. Subscriptions follow the room (publishers come and go) and the task (Modify); a stream no
longer selected is retired (its writer thread and open file closed) until it is selected again."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence

from chalicelib.models import MixLayoutParams
from chalicelib.naming import AUDIO, AUDIO_VIDEO, MAIN, VIDEO
from chalicelib.subscription import Publisher, Selected
from recorder_container.hls_stream import HlsStream, RecordingContext, StreamKey, clear_work_dir
from recorder_container.hls_writer import WriterSpec
from recorder_container.room import Received
from recorder_container.stream_report import StreamReport
from recorder_container.subscriptions import StreamRef, Subscriptions

log = logging.getLogger(__name__)


def stream_key(sel: Selected, av_merge: bool) -> StreamKey:
    if av_merge and sel.media_id == MAIN:
        return StreamKey(sel.user_id, MAIN, AUDIO_VIDEO)
    return StreamKey(sel.user_id, sel.media_id, sel.kind)


class SingleStreamRecording:
    """Subscribes to the selected streams and writes each as its own HLS stream. Owned by the
    event loop; each stream's writer runs in a thread of its own."""

    def __init__(self, ctx: RecordingContext, report: StreamReport | None = None) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.report = report if report is not None else StreamReport()
        self.streams: dict[StreamKey, HlsStream] = {}
        self.subscriptions = Subscriptions(ctx.room, self._on_frame, ctx.background)
        self._routes: dict[StreamRef, tuple[StreamKey, str]] = {}  # (feed, mid) → stream, kind
        self._media_seen = False
        self._closed = False
        ctx.work_dir.mkdir(parents=True, exist_ok=True)

    async def reconcile(self, publishers: Sequence[Publisher], selected: Sequence[Selected],
                        layout: MixLayoutParams | None = None) -> None:
        """Receive the selected streams; drop subscriptions no longer selected and retire their
        streams (the publisher left, Modify unsubscribed them)."""
        want: dict[str, list[str]] = {}
        self._routes = {}
        for sel in selected:
            want.setdefault(sel.user_id, []).append(sel.mid)
            key = stream_key(sel, self.ctx.record.AvMerge == 1)
            self._routes[(sel.user_id, sel.mid)] = (key, sel.kind)
            stream = self._ensure_stream(key)
            if sel.kind == VIDEO:
                stream.keyframe = functools.partial(self._ask_keyframe, sel.user_id, sel.media_id, sel.mid)
        await self.subscriptions.follow(want)
        self.report.follow({(key.user_id, key.media_id, kind) for key, kind in self._routes.values()}, time.time())
        routed = {key for key, _ in self._routes.values()}
        await asyncio.gather(*(s.retire() for key, s in self.streams.items() if key not in routed))

    def _ensure_stream(self, key: StreamKey) -> HlsStream:
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = HlsStream(key, self.ctx, self.loop, on_stored=self._tidy)
            stream.open(WriterSpec(
                name=stream.stem, audio=key.track_type in (AUDIO, AUDIO_VIDEO),
                video=key.track_type in (VIDEO, AUDIO_VIDEO), work_dir=self.ctx.work_dir,
                segment_s=self.ctx.segment_s, audio_channels=self.ctx.audio_channels))
        else:
            stream.reopen()
        return stream

    def _on_frame(self, got: Received) -> None:
        route = self._routes.get((got.feed, got.mid))
        if route is None:
            return
        key, kind = route
        self.report.frame(got, key.media_id, kind)
        writer = self.streams[key].writer
        if writer is None:
            return
        if got.frame is None:  # the track ended: a new subscription brings a new one
            writer.ended(got.source)
            return
        if not self._media_seen:
            self._media_seen = True
            self.ctx.on_media()
        (writer.video if kind == VIDEO else writer.audio)(got.frame, got.arrival, got.source, got.media_time)

    def _ask_keyframe(self, user_id: str, media_id: str, mid: str) -> None:
        self.report.keyframe_requested(user_id, media_id)
        self.subscriptions.request_keyframe(user_id, mid)

    async def drop_subscriptions(self) -> None:
        """Close every subscription (the room went away); the streams stay open for the next ones."""
        await self.subscriptions.drop()

    async def log_stats(self) -> None:
        """One log line per stream: frames written and dropped, RTP packets received and lost."""
        packets: dict[StreamKey, list[int]] = {}
        for ref, (received, lost) in (await self.subscriptions.packet_stats()).items():
            route = self._routes.get(ref)
            if route is not None:
                totals = packets.setdefault(route[0], [0, 0])
                totals[0] += received
                totals[1] += lost
        for key, stream in self.streams.items():
            received, lost = packets.get(key, [0, 0])
            log.info("stream stats", extra={
                "user_id": key.user_id, "media_id": key.media_id, "track_type": key.track_type,
                **stream.stats(), "rtp_received": received, "rtp_lost": lost})

    async def close(self) -> None:
        """Stop receiving, close the open segments, publish the final playlists."""
        self.report.close(time.time())
        try:
            await self.log_stats()
        except Exception:
            log.warning("stream stats unavailable", exc_info=True)
        await self.drop_subscriptions()
        await asyncio.gather(*(s.finish() for s in self.streams.values()))
        self._closed = True
        self._tidy()

    def _tidy(self) -> None:
        if self._closed:
            clear_work_dir(self.ctx.work_dir, self.streams.values())
