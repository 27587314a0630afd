"""A small client of Janus's HTTP API: sessions, plugin handles, messages, events.

Requests that Janus answers synchronously (VideoRoom `exists`, `listparticipants`) return
their plugin data; asynchronous ones (`join`, `leave`) are acked and their result arrives
as an event, which `request` waits for by transaction id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

KEEPALIVE_S = 25
EVENT_POLL_S = 20
VIDEOROOM = "janus.plugin.videoroom"


@dataclass(frozen=True)
class RoomAddress:
    """A TRTC room as Janus's VideoRoom names it, and the robot's identity in it."""

    room: int | str
    robot_id: str | int  # the robot's UserId, or (rooms with integer ids) a number derived from it
    display: str
    pin: str


class JanusError(Exception):
    """Janus refused a request (`janus: error`) or a plugin answered with an error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


def _tx() -> str:
    return secrets.token_hex(8)


class JanusSession:
    """One Janus session over HTTP with a long-poll loop that dispatches events. Owned by the
    event loop."""

    def __init__(self, url: str, api_secret: str = "", token: str = "") -> None:
        self._url = url.rstrip("/")
        self._auth = {k: v for k, v in (("apisecret", api_secret), ("token", token)) if v}
        self._http: aiohttp.ClientSession | None = None
        self.session_id: int | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handle_events: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    async def __aenter__(self) -> JanusSession:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=EVENT_POLL_S + 10))
        try:
            reply = await self._post(self._url, {"janus": "create"})
        except BaseException:
            await self._http.close()
            raise
        self.session_id = int(reply["data"]["id"])
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._keepalive())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            if self.session_id is not None:
                with contextlib.suppress(Exception):
                    await self._post(f"{self._url}/{self.session_id}", {"janus": "destroy"})
            await self._http.close()

    async def _post(self, url: str, message: dict[str, Any]) -> dict[str, Any]:
        assert self._http is not None
        body = {**message, "transaction": message.get("transaction", _tx()), **self._auth}
        async with self._http.post(url, json=body) as resp:
            reply: dict[str, Any] = await resp.json(content_type=None)
        if reply.get("janus") == "error":
            err = reply.get("error", {})
            raise JanusError(int(err.get("code", 0)), str(err.get("reason", "unknown")))
        return reply

    async def attach(self, plugin: str) -> int:
        reply = await self._post(f"{self._url}/{self.session_id}", {"janus": "attach", "plugin": plugin})
        return int(reply["data"]["id"])

    async def detach(self, handle: int) -> None:
        self._handle_events.pop(handle, None)
        await self._post(f"{self._url}/{self.session_id}/{handle}", {"janus": "detach"})

    async def request(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> dict[str, Any]:
        """Send a plugin message; return its plugin data (and `jsep`, if any, under "jsep")."""
        tx = _tx()
        message: dict[str, Any] = {"janus": "message", "body": body, "transaction": tx}
        if jsep is not None:
            message["jsep"] = jsep
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[tx] = future
        try:
            reply = await self._post(f"{self._url}/{self.session_id}/{handle}", message)
            if reply.get("janus") == "success":
                result = reply
            else:  # "ack": the answer comes as an event with our transaction
                result = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(tx, None)
        data: dict[str, Any] = dict(result.get("plugindata", {}).get("data", {}))
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        if "jsep" in result:
            data["jsep"] = result["jsep"]
        return data

    async def _poll(self) -> None:
        assert self._http is not None
        params = {"maxev": "10", **({"apisecret": self._auth["apisecret"]} if "apisecret" in self._auth else {})}
        if "token" in self._auth:
            params["token"] = self._auth["token"]
        while True:
            try:
                async with self._http.get(f"{self._url}/{self.session_id}", params=params) as resp:
                    batch = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("janus event poll failed: %s", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for event in batch if isinstance(batch, list) else [batch]:
                self._dispatch(event)

    def events_of(self, handle: int) -> asyncio.Queue[dict[str, Any]]:
        """Unsolicited events Janus sends about a handle (plugin events, hangup, media…)."""
        return self._handle_events.setdefault(handle, asyncio.Queue())

    def _dispatch(self, event: dict[str, Any]) -> None:
        if event.get("janus") == "keepalive":
            return
        future = self._pending.get(str(event.get("transaction", "")))
        if future is not None and not future.done():
            future.set_result(event)
            return
        queue = self._handle_events.get(int(event.get("sender", 0) or 0))
        if queue is not None:
            queue.put_nowait(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, JanusError):
                await self._post(f"{self._url}/{self.session_id}", {"janus": "keepalive"})
