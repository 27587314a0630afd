"""A WebRTC participant for tests: joins a Janus VideoRoom with aiortc and publishes H.264
video of a solid colour with a moving bar (so every frame differs) and an Opus tone."""

from __future__ import annotations

import asyncio
import fractions
import math
import secrets
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, color: tuple[int, int, int], width: int = 320, height: int = 180, fps: int = 15) -> None:
        super().__init__()
        self.color, self.width, self.height, self.fps = color, width, height, fps
        self.count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.time()
        await asyncio.sleep(max(0.0, self._start + self.count / self.fps - time.time()))
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = self.color
        x = (self.count * 4) % (self.width - 8)
        image[:, x:x + 8] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = int(self.count * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self.hz = hz
        self.count = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        await asyncio.sleep(max(0.0, self._start + self.count * 0.02 - time.time()))
        t = (np.arange(960) + self.count * 960) / 48000
        samples = (np.sin(2 * math.pi * self.hz * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.count * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self.count += 1
        return frame


class Participant:
    """Joins `room` as `user_id` and publishes until `leave()`."""

    def __init__(self, janus_url: str, room: str, user_id: str, display: str | None = None) -> None:
        self.url, self.room, self.user_id = janus_url, room, user_id
        self.display = user_id if display is None else display
        self.pc: RTCPeerConnection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._session = self._handle = 0

    async def _send(self, path: str, msg: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        msg = {**msg, "transaction": secrets.token_hex(6)}
        async with self._http.post(self.url + path, json=msg) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        if reply.get("janus") == "ack" and msg["janus"] == "message":  # the answer comes as an event
            while True:
                async with self._http.get(f"{self.url}/{self._session}?maxev=1") as resp:
                    event = await resp.json(content_type=None)
                if event.get("transaction") == msg["transaction"]:
                    return event  # type: ignore[no-any-return]
        assert reply.get("janus") != "error", reply
        return reply

    async def join(self, create_room: bool = False, videocodec: str = "h264") -> None:
        self._http = aiohttp.ClientSession()
        self._session = (await self._send("", {"janus": "create"}))["data"]["id"]
        self._handle = (await self._send(f"/{self._session}", {"janus": "attach",
                                                                "plugin": "janus.plugin.videoroom"}))["data"]["id"]
        if create_room:
            await self._message({"request": "create", "room": self.room, "publishers": 30, "videocodec": videocodec,
                                 "audiocodec": "opus", "fir_freq": 10})
        joined = await self._message({"request": "join", "ptype": "publisher", "room": self.room,
                                      "id": self.user_id, "display": self.display})
        assert joined["plugindata"]["data"].get("videoroom") == "joined", joined
        self._keepalive = asyncio.create_task(self._keep_session())

    async def _keep_session(self) -> None:
        """Janus ends a session that says nothing for session_timeout (60 s)."""
        while True:
            await asyncio.sleep(20)
            await self.keepalive()

    async def _message(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep:
            msg["jsep"] = jsep
        return await self._send(f"/{self._session}/{self._handle}", msg)

    async def publish(self, color: tuple[int, int, int], hz: float, audio: bool = True, video: bool = True,
                      video_codec: str = "video/H264") -> None:
        """Publish the synthetic pattern (encoded by aiortc) and tone."""
        await self.publish_tracks(ToneTrack(hz) if audio else None, PatternTrack(color) if video else None,
                                  video_codec)

    async def publish_tracks(self, audio: MediaStreamTrack | None, video: MediaStreamTrack | None,
                             video_codec: str = "video/H264") -> None:
        """Publish any tracks (e.g. a MediaPlayer replaying encoded H.264 with decode=False)."""
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy="max-bundle"))  # type: ignore[arg-type]
        self.pc = pc
        if audio is not None:
            pc.addTransceiver(audio, direction="sendonly")
        if video is not None:
            transceiver = pc.addTransceiver(video, direction="sendonly")
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType == video_codec])
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self._message({"request": "configure", "audio": audio is not None, "video": video is not None},
                                    {"type": "offer", "sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(**reply["jsep"]))

    async def keepalive(self) -> None:
        await self._send(f"/{self._session}", {"janus": "keepalive"})

    async def leave(self) -> None:
        self._keepalive.cancel()
        if self.pc is not None:
            await self.pc.close()
        try:
            await self._message({"request": "leave"})
        finally:
            await self._send(f"/{self._session}", {"janus": "destroy"})
            assert self._http is not None
            await self._http.close()
