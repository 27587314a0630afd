"""Encoded H.264 out of aiortc, without decoding it.

aiortc's receiver asks `get_decoder(codec)` (imported into aiortc.rtcrtpreceiver) for a
decoder and runs it in a thread per receiver. For H.264 we hand it a decoder that returns the
access unit itself — Annex-B bytes whose pts is aiortc's 90 kHz timestamp (starting at 0) —
so the track's `recv()` yields `EncodedVideo` instead of decoded pictures. Every other codec
(Opus, VP8) keeps aiortc's own decoder. aiortc is pinned; tests/unit/test_codec_seam.py fails
if an upgrade moves the seam.
"""

from __future__ import annotations

from typing import Any

import aiortc.rtcrtpreceiver as receiver_module
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


def install() -> None:
    """Route aiortc's receivers through the passthrough for H.264 (idempotent)."""
    if not hasattr(receiver_module, "get_decoder"):
        raise RuntimeError("aiortc moved its codec seam: rtcrtpreceiver.get_decoder is gone")
    receiver_module.get_decoder = get_decoder
