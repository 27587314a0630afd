"""Baseline for bench/single_stream.py: subscribe to publishers with aiortc and decode every
frame (aiortc's own decoders), writing nothing. Runs until terminated.

Usage: decode_subscriber.py JANUS_URL ROOM FEED [FEED ...]
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription


async def subscribe(http: aiohttp.ClientSession, url: str, room: str, feed: str) -> RTCPeerConnection:
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

    await pc.setRemoteDescription(RTCSessionDescription(**attached["jsep"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await send(f"/{session}/{handle}", {"janus": "message", "body": {"request": "start"},
                                        "jsep": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return pc


async def main(url: str, room: str, feeds: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        pcs = [await subscribe(http, url, room, feed) for feed in feeds]
        try:
            await asyncio.Event().wait()
        finally:
            for pc in pcs:
                await pc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
