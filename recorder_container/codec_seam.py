"""Encoded H.264 out of aiortc, without decoding it.

aiortc's receiver asks `get_decoder(codec)` (imported into aiortc.rtcrtpreceiver) for a
decoder and runs it in a thread per receiver. For H.264 we hand it a decoder that returns the
access unit itself — Annex-B bytes whose pts is aiortc's 90 kHz timestamp (starting at 0) —
so the track's `recv()` yields `EncodedVideo` instead of decoded pictures. Every other codec
(Opus, VP8) keeps aiortc's own decoder.

The same thread hands its frames to the event loop with one plain callback per batch of frames
(`decoder_worker` below) instead of aiortc's `run_coroutine_threadsafe` per frame, which made a
coroutine, a Future and a Task for each (about a tenth of a recorder's CPU at 4 participants).

Where decoding a frame costs less than handing it to a thread and back (Opus: tens of µs per
20 ms packet; the H.264 passthrough: a copy), there is no thread: the receiver's queue decodes
each frame as the receiver puts it there, on the event loop (`InlineDecoder`). A thread per
receiver meant two wake-ups and two GIL hand-overs per packet; with nine participants that
futex traffic was a third of the event loop's CPU.

aiortc is pinned; tests/unit/test_codec_seam.py fails if an upgrade moves the seam.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiortc.rtcrtpreceiver as receiver_module
import av
from aiortc.codecs import get_decoder as aiortc_get_decoder

from recorder_container.encoded import EncodedVideo


class PassthroughH264Decoder:
    """Stands where aiortc expects an H.264 decoder; returns the encoded frame."""

    def decode(self, encoded_frame: Any) -> list[EncodedVideo]:
        return [EncodedVideo(bytes(encoded_frame.data), int(encoded_frame.timestamp))]


def get_decoder(codec: Any) -> Any:
    if codec.mimeType.lower() == "video/h264":
        return PassthroughH264Decoder()
    return aiortc_get_decoder(codec)


log = logging.getLogger(__name__)


def _deliver(output_q: asyncio.Queue[Any], frames: list[Any]) -> None:
    for frame in frames:
        output_q.put_nowait(frame)  # the track's queue is unbounded


class _Decoding:
    """A receiver's decoder, made for the codec its frames come in. A frame that fails to decode
    (`errors`) is logged and flagged (aiortc then asks a video sender for a keyframe), and the
    decoder is kept: a new one would fail until the next keyframe."""

    def __init__(self, decode_error: threading.Event, errors: tuple[type[Exception], ...]) -> None:
        self._decode_error, self._errors = decode_error, errors
        self._codec_name: str | None = None
        self._decoder: Any = None

    def frames(self, codec: Any, encoded_frame: Any) -> list[Any]:
        try:
            if codec.name != self._codec_name:
                self._decoder, self._codec_name = receiver_module.get_decoder(codec), codec.name
            frames: list[Any] = self._decoder.decode(encoded_frame)
            return frames
        except self._errors as exc:
            log.warning("failed to decode a %s frame: %s", codec.name, exc)
            self._decode_error.set()
            return []


def decoder_worker(loop: asyncio.AbstractEventLoop, input_q: queue.Queue[Any], output_q: asyncio.Queue[Any],
                   decode_error: threading.Event) -> None:
    """aiortc's decoder thread, as aiortc runs it (one per receiver: encoded frames in, frames for
    the track out, None to end), handing what it has to the loop in one callback at a time."""
    decoding = _Decoding(decode_error, (av.FFmpegError,))
    while True:
        tasks = [input_q.get()]
        while True:
            try:
                tasks.append(input_q.get_nowait())
            except queue.Empty:
                break
        frames: list[Any] = []
        ended = False
        for task in tasks:
            if task is None:
                ended = True
                break
            frames.extend(decoding.frames(*task))
        if ended:
            frames.append(None)  # the track ends
        if frames:
            try:
                loop.call_soon_threadsafe(_deliver, output_q, frames)
            except RuntimeError:  # the loop is closed: nobody reads the track any more
                return
        if ended:
            return


class DecoderQueue(queue.Queue[Any]):
    """A receiver's decoder queue (aiortc makes one per receiver). Once an `InlineDecoder`
    takes it over, what the receiver puts in is decoded there and then."""

    def __init__(self) -> None:
        super().__init__()
        self.take: Callable[[Any], None] | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.take is None:
            super().put(item, block, timeout)
        else:
            self.take(item)


class InlineDecoder:
    """Stands where aiortc starts a receiver's decoder thread, with the same arguments; from
    `start()` on, each frame the receiver queues is decoded on the event loop and goes straight
    to the track. aiortc queues from its receive path and its stop(), both on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, input_q: DecoderQueue, output_q: asyncio.Queue[Any],
                 decode_error: threading.Event) -> None:
        self._input_q, self._output_q = input_q, output_q
        # on the receive path: no frame's failure may stop the transport
        self._decoding = _Decoding(decode_error, (Exception,))

    def start(self) -> None:
        self._input_q.take = self._take

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return self._input_q.take is not None

    def _take(self, task: Any) -> None:
        if task is None:  # the receiver stops: the track ends (aiortc then drops this, decoder and all)
            self._input_q.take = None
            self._output_q.put_nowait(None)
            return
        for frame in self._decoding.frames(*task):
            self._output_q.put_nowait(frame)


def _decoder_thread(inline_kinds: frozenset[str]) -> Callable[..., Any]:
    def make(target: Callable[..., None], name: str, args: tuple[Any, ...]) -> Any:
        if name.removesuffix("-decoder") in inline_kinds and isinstance(args[1], DecoderQueue):
            return InlineDecoder(*args)
        return threading.Thread(target=target, name=name, args=args)
    return make


def install(remux_h264: bool = True) -> None:
    """Route aiortc's receivers through the seam (idempotent; it applies to the whole process):
    audio decoded on the event loop; with `remux_h264`, H.264 handed out encoded, also on the
    loop; any other video decoded in a thread per receiver that hands frames over in batches."""
    if not all(hasattr(receiver_module, name) for name in ("get_decoder", "decoder_worker", "queue", "threading")):
        raise RuntimeError("aiortc moved its codec seam: rtcrtpreceiver.get_decoder, decoder_worker, queue or "
                           "threading is gone")
    receiver_module.get_decoder = get_decoder if remux_h264 else aiortc_get_decoder
    receiver_module.decoder_worker = decoder_worker
    inline = frozenset({"audio", "video"} if remux_h264 else {"audio"})
    receiver_module.queue = SimpleNamespace(Queue=DecoderQueue, Empty=queue.Empty)  # type: ignore[assignment]
    receiver_module.threading = SimpleNamespace(  # type: ignore[assignment]
        Event=threading.Event, Thread=_decoder_thread(inline))
