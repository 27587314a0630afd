"""Encoded H.264 out of aiortc, without decoding it.

aiortc's receiver asks `get_decoder(codec)` (imported into aiortc.rtcrtpreceiver) for a
decoder and runs it in a thread per receiver. For H.264 we hand it a decoder that returns the
access unit itself — Annex-B bytes whose pts is aiortc's 90 kHz timestamp (starting at 0) —
so the track's `recv()` yields `EncodedVideo` instead of decoded pictures. Every other codec
(Opus, VP8) keeps aiortc's own decoder.

The same thread hands its frames to the event loop with one plain callback per batch of frames
(`decoder_worker` below) instead of aiortc's `run_coroutine_threadsafe` per frame, which made a
coroutine, a Future and a Task for each (about a tenth of a recorder's CPU at 4 participants).

aiortc is pinned; tests/unit/test_codec_seam.py fails if an upgrade moves the seam.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
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


def decoder_worker(loop: asyncio.AbstractEventLoop, input_q: queue.Queue[Any], output_q: asyncio.Queue[Any],
                   decode_error: threading.Event) -> None:
    """aiortc's decoder thread, as aiortc runs it (one per receiver: encoded frames in, frames for
    the track out, None to end), handing what it has to the loop in one callback at a time."""
    codec_name: str | None = None
    decoder: Any = None
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
            codec, encoded_frame = task
            if codec.name != codec_name:
                decoder, codec_name = get_decoder(codec), codec.name
            try:
                frames.extend(decoder.decode(encoded_frame))
            except av.FFmpegError as exc:  # keep the decoder: a new one fails until the next keyframe
                log.warning("failed to decode a %s frame: %s", codec.name, exc)
                decode_error.set()
        if ended:
            frames.append(None)  # the track ends
        if frames:
            try:
                loop.call_soon_threadsafe(_deliver, output_q, frames)
            except RuntimeError:  # the loop is closed: nobody reads the track any more
                return
        if ended:
            return


def install() -> None:
    """Route aiortc's receivers through the passthrough for H.264, and their decoder threads
    through `decoder_worker` (idempotent)."""
    if not hasattr(receiver_module, "get_decoder") or not hasattr(receiver_module, "decoder_worker"):
        raise RuntimeError("aiortc moved its codec seam: rtcrtpreceiver.get_decoder or decoder_worker is gone")
    receiver_module.get_decoder = get_decoder
    receiver_module.decoder_worker = decoder_worker
