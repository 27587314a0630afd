"""The publisher's own capture time, where the SFU forwards it: the abs-capture-time RTP header
extension (Chrome sends it; Janus forwards it from 1.2.1 on). It pairs an RTP timestamp with
the NTP time its media was captured on the publisher's clock: what a sender report says, but
from before the publisher's encoder and uplink, which an SFU's own reports cannot see
(sender_clock.py).

aiortc 1.16 neither negotiates nor parses it. `install()` adds it to what aiortc answers with,
and teaches aiortc's header-extension map to read it into `packet.extensions`; a receiver
whose stream carries it hands each (capture NTP, RTP timestamp) to `watch_capture_times`'s
callback. The extension is read only where it was negotiated; elsewhere a packet costs one
attribute lookup more. tests/unit/test_capture_time.py fails if an aiortc upgrade moves what
this reaches into.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import aiortc.codecs as codecs
from aiortc import rtp
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver

URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
_installed = False


def parse(value: bytes) -> int | None:
    """The 64-bit NTP capture timestamp of an extension's value (8 bytes, or 16 with the
    estimated clock offset, which does not matter here: every stream of a publisher shares it)."""
    if len(value) not in (8, 16):
        return None
    ntp: int = struct.unpack("!Q", value[:8])[0]
    return ntp or None


def _configure(original: Callable[[Any, RTCRtpParameters], None]) -> Callable[[Any, RTCRtpParameters], None]:
    def configure(self: Any, parameters: RTCRtpParameters) -> None:
        original(self, parameters)
        for ext in parameters.headerExtensions:
            if ext.uri == URI:
                self.abs_capture_time_id = ext.id
    return configure


def _get(original: Callable[[Any, int, bytes], Any]) -> Callable[[Any, int, bytes], Any]:
    def get(self: Any, extension_profile: int, extension_value: bytes) -> Any:
        values = original(self, extension_profile, extension_value)
        x_id = getattr(self, "abs_capture_time_id", None)
        if x_id is not None:
            for found, value in rtp.unpack_header_extensions(extension_profile, extension_value):
                if found == x_id:
                    values.abs_capture_time = parse(value)
        return values
    return get


def install() -> None:
    """Negotiate and read abs-capture-time in this process's aiortc (idempotent)."""
    global _installed
    if _installed:
        return
    for kind in ("audio", "video"):
        known = codecs.HEADER_EXTENSIONS[kind]
        known.append(RTCRtpHeaderExtensionParameters(id=max(e.id for e in known) + 1, uri=URI))
    rtp.HeaderExtensionsMap.configure = _configure(rtp.HeaderExtensionsMap.configure)  # type: ignore[method-assign,assignment]
    rtp.HeaderExtensionsMap.get = _get(rtp.HeaderExtensionsMap.get)  # type: ignore[method-assign,assignment]
    _installed = True


def watch_capture_times(receiver: RTCRtpReceiver, capture: Callable[[int, int], None]) -> None:
    """Call `capture(ntp, rtp timestamp)` for each packet of the receiver that carries its capture
    time (a sender sends it about once a second, and on a change), before aiortc handles it."""
    handle = receiver._handle_rtp_packet

    async def handle_rtp(packet: Any, arrival_time_ms: int) -> None:
        ntp = getattr(packet.extensions, "abs_capture_time", None)
        if ntp is not None:
            capture(ntp, packet.timestamp)
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
