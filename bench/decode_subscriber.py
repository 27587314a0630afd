"""Baselines for bench/single_stream.py: subscribe to publishers with aiortc and take every
frame, writing nothing. Runs until terminated.

- decode (default): aiortc's own decoders for every stream (what a recorder that decodes pays).
- --receive-only: the floor of cloudrec's receive path: H.264 handed out encoded (the recorder's
  codec seam), Opus decoded, no bandwidth estimation (the recorder strips abs-send-time) —
  everything the recorder does before its own work.

Usage: decode_subscriber.py [--receive-only] JANUS_URL ROOM FEED [FEED ...]
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from recorder_container import codec_seam
from recorder_container.subscriber import without_bandwidth_estimation


async def subscribe(http: aiohttp.ClientSession, url: str, room: str, feed: str,
                    receive_only: bool) -> RTCPeerConnection:
    async def send(path: str, msg: dict[str, Any]) -> dict[str, Any]:
        msg = {**msg, "transaction": secrets.token_hex(6)}
        async with http.post(url + path, json=msg) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        while reply.get("janus") == "ack":
            async with http.get(f"{url}/{session}?maxev=1") as resp:
                event = await resp.json(content_type=None)
            if event.get("transaction") == msg["transaction"]:
                reply = event
        return reply

    session = (await send("", {"janus": "create"}))["data"]["id"]
    handle = (await send(f"/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}))["data"]["id"]
    attached = await send(f"/{session}/{handle}", {"janus": "message", "body": {
        "request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]}})
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy="max-bundle"))  # type: ignore[arg-type]

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def drain() -> None:
            while True:
                await track.recv()
        asyncio.ensure_future(drain())

    offer = attached["jsep"]
    sdp = without_bandwidth_estimation(offer["sdp"]) if receive_only else offer["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=offer["type"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await send(f"/{session}/{handle}", {"janus": "message", "body": {"request": "start"},
                                        "jsep": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return pc


async def main(url: str, room: str, feeds: list[str], receive_only: bool) -> None:
    if receive_only:
        codec_seam.install()
    async with aiohttp.ClientSession() as http:
        pcs = [await subscribe(http, url, room, feed, receive_only) for feed in feeds]
        try:
            await asyncio.Event().wait()
        finally:
            for pc in pcs:
                await pc.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    only = args[:1] == ["--receive-only"]
    args = args[1:] if only else args
    asyncio.run(main(args[0], args[1], args[2:], only))
