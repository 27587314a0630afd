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
import contextlib
import fractions
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from chalicelib import events
from chalicelib.fetch import FetchError, fetch
from chalicelib.layouts import Participant, Window, layout, simulcast_layer
from chalicelib.models import AudioParams, MixLayoutParams, MixTranscodeParams, VideoParams
from chalicelib.naming import AUDIO, AUDIO_VIDEO, VIDEO
from chalicelib.subscription import Publisher, Selected
from recorder_container.audio_mixer import AudioMixer
from recorder_container.codec_seam import EncodedVideo
from recorder_container.compositor import Canvas, hex_rgb
from recorder_container.hls_writer import WriterSpec
from recorder_container.janus import JanusSession
from recorder_container.recording import HlsStream, RecordingContext, StreamKey
from recorder_container.subscriber import FeedSubscriber, subscribe_missing
from recorder_container.watermarks import (
    Placed,
    decode_rgba,
    image_overlay,
    rgba_frame,
    text_overlay,
    timestamp_overlay,
)

log = logging.getLogger(__name__)

MIX_DELAY_S = 0.3  # audio is mixed this far behind real time, so late packets still count
AUDIO_CHUNK_S = 0.02
SAMPLE_RATES = {1: 48000, 2: 44100, 3: 16000}
DEFAULT_VIDEO = VideoParams(Width=360, Height=640, Fps=15, BitRate=550000, Gop=10)
DEFAULT_AUDIO = AudioParams(SampleRate=1, Channel=2, BitRate=64000)


def mix_preset() -> str:
    """The x264 preset of the mixed picture (the bench compares ffmpeg at the same one)."""
    return os.environ.get("CLOUDREC_MIX_PRESET", "veryfast")


@dataclass
class Scene:
    """What the compositor draws: windows back to front, overlays on top."""

    windows: list[Window] = field(default_factory=list)
    overlays: list[Placed] = field(default_factory=list)
    placeholders: dict[str, av.VideoFrame] = field(default_factory=dict)
    clock: Any = None  # WaterMarkTimestamp, redrawn each second


def participants_of(publishers: list[Publisher], selected: list[Selected]) -> list[Participant]:
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
    """Subscribes, composes, mixes, and writes the room as one stream."""

    def __init__(self, ctx: RecordingContext, transcode: MixTranscodeParams | None, allow_private_urls: bool) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.video = (transcode.VideoParams if transcode else None) or DEFAULT_VIDEO
        self.audio = (transcode.AudioParams if transcode else None) or DEFAULT_AUDIO
        self.rate = SAMPLE_RATES[self.audio.SampleRate]
        self.allow_private = allow_private_urls
        self.has_video = ctx.record.StreamType != 1
        self.has_audio = ctx.record.StreamType != 2
        track_type = AUDIO_VIDEO if self.has_video and self.has_audio else VIDEO if self.has_video else AUDIO
        self.stream = HlsStream(StreamKey("", "main", track_type, mixed=True), ctx.naming, ctx.uploader, ctx.emit,
                                ctx.put_file, self.loop)
        self.stream.keyframe = self._want_keyframe
        self.stream.open(WriterSpec(
            name=self.stream.stem, audio=self.has_audio, video=self.has_video,
            work_dir=ctx.work_dir, segment_s=ctx.segment_s, audio_channels=self.audio.Channel,
            audio_bitrate=self.audio.BitRate, audio_rate=self.rate, audio_latency_s=0.0))
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        self.subscribers: dict[str, FeedSubscriber] = {}
        self._latest: dict[tuple[str, str], av.VideoFrame] = {}
        self._routes: dict[tuple[str, str], tuple[str, str]] = {}  # (feed, mid) → (kind, media_id)
        self._consumers: set[asyncio.Task[None]] = set()
        self._scene = Scene()
        self._layout_params: MixLayoutParams | None = None
        self._images: dict[str, Any] = {}  # URL → RGBA array (None: failed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._force_key = threading.Event()
        self._started = False
        self._canvas = Canvas(self.video.Width, self.video.Height, (0, 0, 0))
        self.mixer: AudioMixer | None = None

    # -- layout ------------------------------------------------------------------------

    def _image(self, url: str | None) -> Any:
        """A layout image (downloaded once); a failed download is reported with 309."""
        if not url:
            return None
        if url not in self._images:
            try:
                self._images[url] = decode_rgba(fetch(url, self.allow_private))
            except (FetchError, OSError, ValueError) as exc:
                log.warning("image %s could not be used: %s", url, exc)
                self._images[url] = None
                failed = events.download_image_error(url, self.ctx.naming.ha_index)
                self.loop.call_soon_threadsafe(self.ctx.emit, failed)
        return self._images[url]

    def _build_scene(self, params: MixLayoutParams | None, people: list[Participant]) -> Scene:
        """Windows, watermarks, background and placeholders for the current layout (blocking:
        it may download images; runs in a thread)."""
        canvas = (self.video.Width, self.video.Height)
        scene = Scene(windows=layout(people, params, canvas))
        if params is not None:
            self._canvas.set_background_color(hex_rgb(params.BackGroundColor))
            background = self._image(params.BackgroundImageUrl)
            if background is not None:
                self._canvas.set_background_image(rgba_frame(background), params.BackgroundImageRenderMode)
            for mark in params.WaterMarkList or []:
                if mark.WaterMarkType == 0 and mark.WaterMarkImage is not None:
                    img = mark.WaterMarkImage
                    rgba = self._image(img.WaterMarkUrl)
                    if rgba is not None:
                        scene.overlays.append(image_overlay(rgba, img.Left, img.Top, img.Width, img.Height))
                elif mark.WaterMarkType == 1 and mark.WaterMarkChar is not None:
                    scene.overlays.append(text_overlay(mark.WaterMarkChar))
                elif mark.WaterMarkType == 2:
                    scene.clock = mark.WaterMarkTimestamp
        for window in scene.windows:
            rgba = self._image(window.placeholder)
            if window.placeholder and rgba is not None:
                scene.placeholders[window.placeholder] = rgba_frame(rgba)
        return scene

    async def apply_layout(self, params: MixLayoutParams | None, people: list[Participant]) -> None:
        self._layout_params = params
        self._scene = await asyncio.to_thread(self._build_scene, params, people)

    # -- subscriptions -----------------------------------------------------------------

    async def reconcile(self, janus: JanusSession, publishers: list[Publisher], selected: list[Selected],
                        params: MixLayoutParams | None) -> None:
        """Lay out the selected participants, then receive exactly what is shown and heard."""
        people = participants_of(publishers, selected)
        await self.apply_layout(params, people)
        shown = {(w.user_id, w.media_id): w for w in self._scene.windows if w.user_id}
        simulcast = {(p.user_id, st.mid) for p in publishers for st in p.streams if st.simulcast}
        want: dict[str, list[str]] = {}
        self._routes = {}
        for sel in selected:
            if sel.kind == "audio" and self.has_audio or (
                    sel.kind == "video" and self.has_video and (sel.user_id, sel.media_id) in shown):
                want.setdefault(sel.user_id, []).append(sel.mid)
                self._routes[(sel.user_id, sel.mid)] = (sel.kind, sel.media_id)
        layers = {(s.user_id, s.mid): simulcast_layer(shown[(s.user_id, s.media_id)].width, self.video.Width)
                  for s in selected if (s.user_id, s.mid) in simulcast and (s.user_id, s.media_id) in shown}
        for feed, sub in list(self.subscribers.items()):
            if tuple(want.get(feed, ())) != sub.mids:
                del self.subscribers[feed]
                await sub.close()
                self._latest = {k: v for k, v in self._latest.items() if k[0] != feed}
            else:  # the window changed size: the layer closest to it
                for (user, mid), layer in layers.items():
                    if user == feed:
                        await sub.set_substream(mid, layer)
        await subscribe_missing(self.subscribers, want, lambda feed, mids: FeedSubscriber(
            janus, self.ctx.address, feed, mids, self.ctx.ice_servers, functools.partial(self._on_track, feed),
            {mid: layer for (user, mid), layer in layers.items() if user == feed}))

    def _on_track(self, feed: str, mid: str, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        route = self._routes.get((feed, mid))
        if route is None:
            return
        task = asyncio.create_task(self._consume(feed, route, track), name=f"mix-{feed}-{mid}")
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def _consume(self, feed: str, route: tuple[str, str], track: MediaStreamTrack) -> None:
        kind, media_id = route
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                if not self._started:
                    self._start(now)
                if kind == "video":
                    self._latest[(feed, media_id)] = cast(av.VideoFrame, frame)
                elif self.mixer is not None:
                    self.mixer.push(track, cast(av.AudioFrame, frame), now)
        if kind == "audio" and self.mixer is not None:
            self.mixer.remove(track)

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
        enc.options = {"preset": mix_preset(), "tune": "zerolatency",
                       "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:"
                                      "repeat-headers=1:annexb=1"}
        enc.open()
        return enc

    def _compose(self, origin: float) -> None:
        writer = self.stream.writer
        assert writer is not None
        encoder = self._encoder()
        canvas = self._canvas
        step = 1.0 / self.video.Fps
        clock_overlay: tuple[int, Placed] | None = None
        n = 0
        while not self._stop.is_set():
            due = origin + n * step
            delay = due - time.time()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:  # fell behind (machine overloaded): skip ahead, keep the clock
                n += int(-delay / step)
                continue
            try:
                clock_overlay = self._draw(canvas, encoder, writer, origin, due, clock_overlay)
            except Exception:  # one bad picture must not end the mixed video
                log.exception("composing a frame failed; skipping it")
            n += 1

    def _draw(self, canvas: Canvas, encoder: Any, writer: Any, origin: float, due: float,
              clock_overlay: tuple[int, Placed] | None) -> tuple[int, Placed] | None:
        """Compose, encode and hand over the picture due at `due`."""
        scene = self._scene
        canvas.begin()
        shown: set[int] = set()
        for window in scene.windows:
            frame = self._latest.get((window.user_id, window.media_id)) if window.user_id else None
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
        for sub in list(self.subscribers.values()):
            await sub.close()
        self.subscribers.clear()
        for task in list(self._consumers):
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._latest.clear()

    async def close(self) -> None:
        """Stop receiving and composing, close the last segment, publish the final playlist."""
        await self.drop_subscriptions()
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        await self.stream.finish()

