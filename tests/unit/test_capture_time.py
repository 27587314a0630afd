"""The publisher's capture times (abs-capture-time), where the SFU forwards them: negotiated and
read in aiortc (recorder_container/capture_time.py), and preferred to the SFU's sender reports
once every stream of a publisher carries them (sender_clock.py). Janus 1.1 (Debian 12) does not
forward the extension, so no end-to-end test sends it; these fail if an aiortc upgrade moves what
capture_time reaches into."""

from __future__ import annotations

import asyncio
import struct

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from recorder_container import capture_time
from recorder_container.sender_clock import CODEC_DELAY_S
from tests.unit.test_sender_clock import AUDIO_ORIGIN, T0, VIDEO_ORIGIN, fake_receiver, feed, ntp

capture_time.install()

OFFER = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
m=video 9 UDP/TLS/RTP/SAVPF 102
c=IN IP4 0.0.0.0
a=mid:0
a=sendonly
a=rtcp-mux
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:9 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 """ + ":".join(["AB"] * 32) + """
a=setup:actpass
"""


def test_the_value_is_an_ntp_timestamp_with_or_without_the_clock_offset() -> None:
    assert capture_time.parse(struct.pack("!Q", ntp(T0))) == ntp(T0)
    assert capture_time.parse(struct.pack("!Qq", ntp(T0), -5)) == ntp(T0)
    assert capture_time.parse(b"\x00" * 3) is None


def test_the_recorder_answers_an_offer_of_capture_times() -> None:
    async def answer() -> str:
        pc = RTCPeerConnection()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(OFFER.replace("\n", "\r\n"), "offer"))
            extensions = [e.uri for t in pc.getTransceivers() for e in t._headerExtensions]
            assert capture_time.URI in extensions  # what the subscriber checks before it watches a stream
            return (await pc.createAnswer()).sdp
        finally:
            await pc.close()

    assert f"a=extmap:9 {capture_time.URI}" in asyncio.run(answer())


def packet_with_capture_time(ext_id: int, when: int, timestamp: int) -> bytes:
    value = struct.pack("!Q", when)
    element = bytes([(ext_id << 4) | (len(value) - 1)]) + value
    element += b"\x00" * (-len(element) % 4)
    header = struct.pack("!BBHII", 0x90, 102, 7, timestamp, 1234)  # version 2, an extension follows
    return header + struct.pack("!HH", 0xBEDE, len(element) // 4) + element + b"payload"


def test_a_packet_carrying_it_is_read_where_it_was_negotiated_only() -> None:
    data = packet_with_capture_time(9, ntp(T0), 90000)
    negotiated = HeaderExtensionsMap()
    negotiated.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(9, capture_time.URI)]))
    assert RtpPacket.parse(data, negotiated).extensions.abs_capture_time == ntp(T0)  # type: ignore[attr-defined]
    assert getattr(RtpPacket.parse(data, HeaderExtensionsMap()).extensions, "abs_capture_time", None) is None


def test_a_receivers_packets_hand_their_capture_times_on() -> None:
    receiver = fake_receiver("video")
    seen: list[tuple[int, int]] = []
    capture_time.watch_capture_times(receiver, lambda n, t: seen.append((n, t)))
    negotiated = HeaderExtensionsMap()
    negotiated.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(9, capture_time.URI)]))
    asyncio.run(receiver._handle_rtp_packet(RtpPacket.parse(packet_with_capture_time(9, ntp(T0), 4242),
                                                             negotiated), 0))
    assert seen == [(ntp(T0), 4242)]


def test_capture_times_take_the_reports_place_once_every_stream_has_them() -> None:
    clock = feed()
    arrival = 500.0
    leg = 0.03  # the publisher's encoder held the picture 30 ms: the SFU's reports cannot see it

    def say(k: int, capture: bool) -> None:
        a_pts, v_pts = k * 96000, k * 180000
        clock.sender_report("0", ntp(T0 + 2 * k), (AUDIO_ORIGIN + a_pts) % (1 << 32))
        clock.sender_report("1", ntp(T0 + 2 * k + leg), (VIDEO_ORIGIN + v_pts) % (1 << 32))
        if capture:
            clock.capture_time("0", ntp(T0 + 2 * k - 7), (AUDIO_ORIGIN + a_pts) % (1 << 32))  # its own clock
            clock.capture_time("1", ntp(T0 + 2 * k - 7), (VIDEO_ORIGIN + v_pts) % (1 << 32))

    def skew(k: int) -> float:
        beep = clock.place("0", k * 96000, arrival + 2 * k + 0.08)
        flash = clock.place("1", k * 180000, arrival + 2 * k + leg + 0.067)
        return flash - beep - CODEC_DELAY_S["audio"]

    say(0, False)
    assert skew(0) == pytest.approx(leg, abs=1e-6)  # by the SFU's reports: the picture 30 ms late
    say(1, True)
    before = clock.place("0", 96000 - 960, arrival + 2 + 0.06)
    assert skew(1) == pytest.approx(0, abs=1e-6)  # by the capture times: together again
    assert clock.place("0", 96000 + 960, arrival + 2.1) == pytest.approx(before + 0.04)  # the sound did not move
