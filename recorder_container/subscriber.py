"""Receiving one publisher's streams: a Janus subscriber handle and an aiortc peer
connection that carries the chosen streams of that feed (one m-line each, bundled).

The transport only: every frame of every received track goes to the sink with its arrival
time (`room.Received`), and a last one with no frame when the track ends; what happens to
the frames is the caller's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtcpSrPacket

from recorder_container import capture_time
from recorder_container.janus import VIDEOROOM, JanusError, JanusSession, RoomAddress
from recorder_container.room import FrameSink, Received
from recorder_container.sender_clock import FeedClock

log = logging.getLogger(__name__)


RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes: bursts of 720p30 keyframes overflow the default ~200 KB


def enlarge_receive_buffers(pc: RTCPeerConnection) -> int:
    """Grow the UDP receive buffers of a connection's ICE sockets; returns how many it grew.
    The sockets sit inside aioice (private), so a change there only costs the enlargement."""
    grown = 0
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
        for protocol in getattr(connection, "_protocols", []):
            sock = protocol.transport.get_extra_info("socket") if getattr(protocol, "transport", None) else None
            if sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RECEIVE_BUFFER:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                grown += 1
    return grown


def ice_servers(servers: Sequence[dict[str, Any]]) -> list[RTCIceServer]:
    return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in servers]


ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def without_bandwidth_estimation(sdp: str) -> str:
    """Janus's offer without the abs-send-time header extension. With it, aiortc runs a receive-side
    bandwidth estimator on every video packet and, whenever it sees "overuse", sends a REMB per
    packet (an SRTCP encryption and a sendto each: a third of the recorder's event loop at 4 x
    720p). A recorder must never ask a publisher to lower its quality anyway."""
    return "".join(line for line in sdp.splitlines(keepends=True) if ABS_SEND_TIME not in line)


def rtp_origin(receiver: RTCRtpReceiver) -> Callable[[], int | None]:
    """The RTP timestamp the receiver's frames count their pts from (aiortc's timestamp mapper,
    private: tests/unit/test_sender_clock.py fails if an upgrade moves it)."""
    def origin() -> int | None:
        mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
        return getattr(mapper, "_origin", None)
    return origin


def watch_sender_reports(receiver: RTCRtpReceiver, report: Callable[[int, int], None]) -> None:
    """Call `report(ntp, rtp)` with each RTCP sender report of the receiver's media stream (not
    of its retransmissions), before aiortc handles it."""
    handle = receiver._handle_rtcp_packet
    rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc not in rtx:
            report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await handle(packet)

    receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


class FeedSubscriber:
    """Subscribes to `mids` of one publisher (`feed`) and hands their frames to `sink`. Owned by
    the event loop; aiortc decodes in threads of its own (or not at all: see codec_seam)."""

    def __init__(self, janus: JanusSession, address: RoomAddress, feed: str, mids: Sequence[str],
                 servers: Sequence[dict[str, Any]], sink: FrameSink,
                 substreams: Mapping[str, int] | None = None) -> None:
        self.feed = feed
        self.mids = tuple(mids)
        self.substreams = dict(substreams or {})  # publisher mid → simulcast layer to receive
        self._sub_mids: dict[str, str] = {}  # publisher mid → our mid
        self._janus = janus
        self._address = address
        self._servers = servers
        self._sink = sink
        self._handle: int | None = None
        self._pc: RTCPeerConnection | None = None
        self._receivers: dict[str, RTCRtpReceiver] = {}
        self.clock = FeedClock(feed)  # where each frame belongs on the recorder's clock
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._handle = await self._janus.attach(VIDEOROOM)
        feed: Any = self.feed if self._address.robot_id is not None else int(self.feed)
        streams = [{"feed": feed, "mid": mid, **({"substream": self.substreams[mid]} if mid in self.substreams
                                                   else {})} for mid in self.mids]
        body: dict[str, Any] = {"request": "join", "ptype": "subscriber", "room": self._address.room,
                                "streams": streams}
        if self._address.pin:
            body["pin"] = self._address.pin
        attached = await self._janus.request(self._handle, body)
        # the subscriber's own mids map to the publisher's
        feed_mid = {str(s["mid"]): str(s.get("feed_mid", s["mid"])) for s in attached.get("streams", [])}
        self._sub_mids = {pub: ours for ours, pub in feed_mid.items()}
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self._servers) or None,
                                                bundlePolicy="max-bundle"))  # type: ignore[arg-type]
        self._pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is track:
                    mid = feed_mid.get(str(transceiver.mid), str(transceiver.mid))
                    receiver = self._receivers[mid] = transceiver.receiver
                    self.clock.add(mid, track.kind, rtp_origin(receiver))
                    watch_sender_reports(receiver, functools.partial(self.clock.sender_report, mid))
                    if any(e.uri == capture_time.URI for e in transceiver._headerExtensions):
                        capture_time.watch_capture_times(receiver, functools.partial(self.clock.capture_time, mid))
                    pump = asyncio.create_task(self._pump(mid, track), name=f"recv-{self.feed}-{mid}")
                    self._pumps.add(pump)
                    pump.add_done_callback(self._pumps.discard)
                    return

        offer = attached["jsep"]
        if capture_time.URI in offer["sdp"]:
            log.info("the SFU offers %s's capture times (abs-capture-time)", self.feed)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=without_bandwidth_estimation(offer["sdp"]),
                                                            type=offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())  # gathers: the sockets exist now
        if not enlarge_receive_buffers(pc):
            log.warning("could not enlarge the UDP receive buffers (aioice internals changed?)")
        await self._janus.request(self._handle, {"request": "start"},
                                  jsep={"type": "answer", "sdp": pc.localDescription.sdp})
        log.info("subscribed to %s (%s)", self.feed, ",".join(self.mids))

    async def _pump(self, mid: str, track: MediaStreamTrack) -> None:
        """Frames of one track to the sink, then its end."""
        failed = False
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                arrival = time.time()
                try:
                    media_time = self.clock.place(mid, int(frame.pts or 0), arrival)
                    self._sink(Received(self.feed, mid, frame, arrival, track, media_time))
                except Exception:  # a frame the recording cannot take must not stop the stream
                    if not failed:
                        failed = True
                        log.exception("a frame of %s/%s could not be taken", self.feed, mid)
        self._sink(Received(self.feed, mid, None, time.time(), track))

    async def request_keyframe(self, mid: str) -> None:
        """Send a PLI for the publisher's stream `mid` (Janus relays it to the publisher)."""
        receiver = self._receivers.get(mid)
        if receiver is None:
            return
        for source in receiver.getSynchronizationSources():
            await receiver._send_rtcp_pli(source.source)

    async def set_layer(self, mid: str, layer: int) -> None:
        """Receive another simulcast layer of the publisher's stream `mid`."""
        if self._handle is None or self.substreams.get(mid) == layer or mid not in self._sub_mids:
            return
        self.substreams[mid] = layer
        await self._janus.request(self._handle, {"request": "configure", "streams": [
            {"mid": self._sub_mids[mid], "substream": layer}]})

    async def packet_stats(self) -> dict[str, tuple[int, int]]:
        """Per publisher mid: RTP packets received and lost (from sequence numbers)."""
        out: dict[str, tuple[int, int]] = {}
        for mid, receiver in self._receivers.items():
            for stat in (await receiver.getStats()).values():
                if stat.type == "inbound-rtp":
                    out[mid] = (stat.packetsReceived, stat.packetsLost)
        return out

    async def close(self) -> None:
        if self._pc is not None:
            await self._pc.close()  # the tracks end: each pump hands the sink its end
            self._pc = None
        if self._pumps:
            _, late = await asyncio.wait(set(self._pumps), timeout=1.0)
            for pump in late:
                pump.cancel()
        if self._handle is not None:
            with contextlib.suppress(JanusError, asyncio.TimeoutError, OSError):
                await self._janus.request(self._handle, {"request": "leave"}, timeout=3)
            with contextlib.suppress(JanusError, OSError):
                await self._janus.detach(self._handle)
            self._handle = None
