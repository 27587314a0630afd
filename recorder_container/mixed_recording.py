"""Mixed-stream recording (RecordMode 2): the subscribed participants composed into one
picture and one sound, encoded once, written as one HLS stream.

Only what shows is decoded: video is subscribed for participants that have a window, audio
for every audible one. A compositor thread draws the latest picture of each window at the
output frame rate and encodes it (x264); an audio thread mixes the sources a little behind
real time; both feed one segment writer, so the mixed files have the same shape, uploads,
events and Describe entries as single-stream ones. A new layout (Modify, someone joining or
leaving) applies from the next frame.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import av

from chalicelib import events
from chalicelib.fetch import address_policy, fetch
from chalicelib.layouts import Participant, simulcast_layer
from chalicelib.models import MixLayoutParams, MixTranscodeParams, mix_audio, mix_video
from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.subscription import Publisher, Selected
from recorder_container.audio_mixer import AudioMixer
from recorder_container.compositor import Canvas
from recorder_container.encoded import EncodedVideo
from recorder_container.hls_stream import HlsStream, RecordingContext, StreamKey, clear_work_dir
from recorder_container.hls_writer import WriterSpec
from recorder_container.room import Received
from recorder_container.scene import Backdrop, Scene, SceneBuilder, SceneKeeper
from recorder_container.stream_report import StreamReport
from recorder_container.subscriptions import StreamRef, Subscriptions
from recorder_container.watermarks import Placed, timestamp_overlay

log = logging.getLogger(__name__)

MIX_DELAY_S = 0.3  # audio is mixed this far behind real time, so late packets still count
# pictures are composed this far behind real time: a frame reaches the compositor after its place on
# the clock (its sender report's time) by what the receive path held it, up to a frame interval
COMPOSE_DELAY_S = 0.25
KEEP_PICTURES_S = 0.5  # how much of each window's recent pictures is kept to choose from
AUDIO_CHUNK_S = 0.02
SAMPLE_RATES = {1: 48000, 2: 44100, 3: 16000}


def nearest(pictures: Sequence[tuple[float, Any]], until: float) -> Any:
    """The newest of a window's pictures (time, frame; oldest first) taken before `until`; the
    oldest when all are later (the window's first pictures)."""
    for at, frame in reversed(pictures):
        if at <= until:
            return frame
    return pictures[0][1] if pictures else None


def participants_of(publishers: Sequence[Publisher], selected: Sequence[Selected]) -> list[Participant]:
    """The layout's participants in join order: each selected user's main stream (with or
    without video), and an aux stream where one is selected."""
    chosen = {(s.user_id, s.kind, s.media_id) for s in selected}
    out = []
    for pub in publishers:
        audio = (pub.user_id, "audio", "main") in chosen
        main_video = (pub.user_id, "video", "main") in chosen
        if audio or main_video:
            out.append(Participant(pub.user_id, "main", has_video=main_video))
        if (pub.user_id, "video", "aux") in chosen:
            out.append(Participant(pub.user_id, "aux", has_video=True))
    return out


class MixedRecording:
    """Subscribes, composes, mixes, and writes the room as one stream.

    Threads: the event loop owns the subscriptions, the scene (replaced whole on a new layout)
    and `_latest` (each window's recent pictures, one assignment per frame); the compositor
    thread reads those two and alone owns the canvas and the encoder; the audio thread owns
    nothing but its position (the mixer locks its sources)."""

    def __init__(self, ctx: RecordingContext, transcode: MixTranscodeParams | None, allow_private_urls: bool,
                 preset: str, report: StreamReport | None = None) -> None:
        self.ctx = ctx
        self.report = report if report is not None else StreamReport()
        self.loop = asyncio.get_running_loop()
        self.video, self.audio = mix_video(transcode), mix_audio(transcode)
        self.rate = SAMPLE_RATES[self.audio.SampleRate]
        self.preset = preset
        self.has_video = ctx.record.StreamType != 1
        self.has_audio = ctx.record.StreamType != 2
        track_type = AUDIO_VIDEO if self.has_video and self.has_audio else VIDEO if self.has_video else AUDIO
        self.stream = HlsStream(StreamKey("", "main", track_type, mixed=True), ctx, self.loop,
                                keyframe=self._want_keyframe, on_stored=self._tidy)
        self.stream.open(WriterSpec(
            name=self.stream.stem, audio=self.has_audio, video=self.has_video,
            work_dir=ctx.work_dir, segment_s=ctx.segment_s, audio_channels=self.audio.Channel,
            audio_bitrate=self.audio.BitRate, audio_rate=self.rate, audio_latency_s=0.0))
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        self.subscriptions = Subscriptions(ctx.room, self._on_frame, ctx.background)
        policy = address_policy(allow_private_urls)
        self._scenes = SceneKeeper(SceneBuilder((self.video.Width, self.video.Height), lambda url: fetch(url, policy),
                                                self._image_failed))
        # each window's recent pictures with their times, oldest first (a new tuple per frame)
        self._latest: dict[tuple[str, str], tuple[tuple[float, av.VideoFrame], ...]] = {}
        self._routes: dict[StreamRef, tuple[str, str]] = {}  # (feed, mid) → (kind, media_id)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._force_key = threading.Event()
        self._started = False
        self._closed = False
        self.mixer: AudioMixer | None = None

    def _image_failed(self, url: str) -> None:
        """309 for a layout image that cannot be used (called on the scene builder's thread)."""
        self.loop.call_soon_threadsafe(self.ctx.emit, events.download_image_error(url, self.ctx.naming.ha_index))

    async def apply_layout(self, params: MixLayoutParams | None, people: list[Participant]) -> None:
        """Show a layout now; its images join it as they are downloaded."""
        await self._scenes.apply(params, people)

    # -- subscriptions -----------------------------------------------------------------

    async def reconcile(self, publishers: Sequence[Publisher], selected: Sequence[Selected],
                        layout: MixLayoutParams | None = None) -> None:
        """Lay out the selected participants, then receive exactly what is shown and heard."""
        await self.apply_layout(layout, participants_of(publishers, selected))
        shown = {(w.user_id, w.media_id): w for w in self._scenes.current.windows if w.user_id}
        simulcast = {(p.user_id, st.mid) for p in publishers for st in p.streams if st.simulcast}
        want: dict[str, list[str]] = {}
        routes: dict[StreamRef, tuple[str, str]] = {}
        for sel in selected:
            if sel.kind == "audio" and self.has_audio or (
                    sel.kind == "video" and self.has_video and (sel.user_id, sel.media_id) in shown):
                want.setdefault(sel.user_id, []).append(sel.mid)
                routes[(sel.user_id, sel.mid)] = (sel.kind, sel.media_id)
        self._routes = routes
        self.report.follow({(feed, media_id, kind) for (feed, _), (kind, media_id) in routes.items()}, time.time())
        layers = {(s.user_id, s.mid): simulcast_layer(shown[(s.user_id, s.media_id)].width, self.video.Width)
                  for s in selected if (s.user_id, s.mid) in simulcast and (s.user_id, s.media_id) in shown}
        await self.subscriptions.follow(want, layers)
        feeds = self.subscriptions.feeds
        self._latest = {k: v for k, v in self._latest.items() if k[0] in feeds}

    def _on_frame(self, got: Received) -> None:
        route = self._routes.get((got.feed, got.mid))
        if route is None:
            return
        kind, media_id = route
        self.report.frame(got, media_id, kind)
        if got.frame is None:  # the stream ended
            if kind == "audio" and self.mixer is not None:
                self.mixer.remove(got.source)
            return
        if not self._started:
            self._start(got.arrival)
        if kind == "video":
            key = (got.feed, media_id)
            at = got.arrival if got.media_time is None else got.media_time
            self._latest[key] = (*[p for p in self._latest.get(key, ()) if p[0] >= at - KEEP_PICTURES_S],
                                 (at, got.frame))
        elif self.mixer is not None:
            self.mixer.push(got.source, got.frame, got.arrival, got.media_time)

    # -- output ------------------------------------------------------------------------

    def _start(self, now: float) -> None:
        """The first media arrived: the mixed stream starts now."""
        self._started = True
        self.ctx.on_media()
        if self.has_audio:
            self.mixer = AudioMixer(self.rate, self.audio.Channel, now)
            self._threads.append(threading.Thread(target=self._mix_audio, args=(now,), name="mix-audio",
                                                  daemon=True))
        if self.has_video:
            self._threads.append(threading.Thread(target=self._compose, args=(now,), name="mix-video",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()

    def _want_keyframe(self) -> None:
        self._force_key.set()

    def _encoder(self) -> Any:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = self.video.Width, self.video.Height, "yuv420p"
        enc.time_base = fractions.Fraction(1, 90000)
        enc.framerate = fractions.Fraction(self.video.Fps)
        enc.bit_rate = self.video.BitRate
        keyint = self.video.Gop * self.video.Fps
        enc.options = {"preset": self.preset, "tune": "zerolatency",
                       "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:"
                                      "repeat-headers=1:annexb=1"}
        enc.open()
        return enc

    def _compose(self, origin: float) -> None:
        """The compositor thread: one picture every 1/Fps s on the task's clock."""
        writer = self.stream.writer
        assert writer is not None
        encoder = self._encoder()
        canvas = Canvas(self.video.Width, self.video.Height, Backdrop().color)
        backdrop = Backdrop()
        step = 1.0 / self.video.Fps
        clock_overlay: tuple[int, Placed] | None = None
        n = 0
        while not self._stop.is_set():
            due = origin + n * step
            delay = due + COMPOSE_DELAY_S - time.time()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:  # fell behind (machine overloaded): skip ahead, keep the clock
                n += int(-delay / step)
                continue
            try:
                scene = self._scenes.current
                if scene.backdrop != backdrop:  # a new layout: the canvas takes its backdrop here, in its own thread
                    backdrop = scene.backdrop
                    canvas.set_backdrop(backdrop.color, backdrop.image, backdrop.render_mode)
                clock_overlay = self._draw(scene, canvas, encoder, writer, origin, due, clock_overlay)
            except Exception:  # one bad picture must not end the mixed video
                log.exception("composing a frame failed; skipping it")
            n += 1

    def _draw(self, scene: Scene, canvas: Canvas, encoder: Any, writer: Any, origin: float, due: float,
              clock_overlay: tuple[int, Placed] | None) -> tuple[int, Placed] | None:
        """Compose, encode and hand over the picture due at `due`."""
        canvas.begin()
        shown: set[int] = set()
        for window in scene.windows:
            frame = nearest(self._latest.get((window.user_id, window.media_id), ()), due + 0.5 / self.video.Fps) \
                if window.user_id else None
            if frame is None and window.placeholder:
                frame = scene.placeholders.get(window.placeholder)
            if frame is not None:
                canvas.draw(frame, window)
                shown.add(id(frame))
        canvas.forget_old_tiles(shown)
        for placed in scene.overlays:
            canvas.blend(placed.overlay, placed.x, placed.y)
        if scene.clock is not None:
            second = int(due)
            if clock_overlay is None or clock_overlay[0] != second:
                clock_overlay = (second, timestamp_overlay(scene.clock, due, (canvas.width, canvas.height)))
            canvas.blend(clock_overlay[1].overlay, clock_overlay[1].x, clock_overlay[1].y)
        picture = canvas.frame()
        picture.pts = round((due - origin) * 90000)
        picture.time_base = fractions.Fraction(1, 90000)
        if self._force_key.is_set():
            self._force_key.clear()
            picture.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(picture):
            writer.video(EncodedVideo(bytes(packet), int(packet.pts)), origin + packet.pts / 90000, "mix")
        return clock_overlay

    def _mix_audio(self, origin: float) -> None:
        writer, mixer = self.stream.writer, self.mixer
        assert writer is not None and mixer is not None
        chunk = round(self.rate * AUDIO_CHUNK_S)
        position = 0
        while not self._stop.wait(AUDIO_CHUNK_S):
            ready = round((time.time() - MIX_DELAY_S - origin) * self.rate)
            while position + chunk <= ready:
                writer.audio(mixer.frame(position, chunk), origin + position / self.rate, "mix")
                position += chunk

    async def drop_subscriptions(self) -> None:
        await self.subscriptions.drop()
        self._latest.clear()

    async def close(self) -> None:
        """Stop receiving and composing, close the last segment, publish the final playlist."""
        self.report.close(time.time())
        await self.drop_subscriptions()
        self._scenes.close()
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        await self.stream.finish()
        self._closed = True
        self._tidy()

    def _tidy(self) -> None:
        if self._closed:
            clear_work_dir(self.ctx.work_dir, [self.stream])
