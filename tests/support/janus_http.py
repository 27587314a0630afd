"""Test-side Janus: create VideoRoom rooms and put (non-publishing) participants in them,
over Janus's HTTP API — what a customer's own app does with its rooms."""

from __future__ import annotations

import secrets
from typing import Any

import requests


class JanusHttp:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = self._post(url, {"janus": "create"})["data"]["id"]

    def _post(self, url: str, msg: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = requests.post(url, json={**msg, "transaction": secrets.token_hex(6)},
                                              timeout=10).json()
        assert reply.get("janus") != "error", reply
        return reply

    def attach(self) -> int:
        return int(self._post(f"{self.url}/{self.session}",
                              {"janus": "attach", "plugin": "janus.plugin.videoroom"})["data"]["id"])

    def sync(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._post(f"{self.url}/{self.session}/{handle}", {"janus": "message", "body": body})
        return reply.get("plugindata", {}).get("data", {})  # type: ignore[no-any-return]

    def create_room(self, room: str) -> None:
        handle = self.attach()
        data = self.sync(handle, {"request": "create", "room": room, "publishers": 30,
                                  "videocodec": "h264", "audiocodec": "opus"})
        assert data.get("videoroom") == "created", data

    def participants(self, room: str) -> list[dict[str, Any]]:
        handle = self.attach()
        return list(self.sync(handle, {"request": "listparticipants", "room": room}).get("participants", []))

    def join(self, room: str, user_id: str) -> int:
        """A participant that joins and publishes nothing; returns its handle (for leave)."""
        handle = self.attach()
        self._post(f"{self.url}/{self.session}/{handle}", {"janus": "message", "body": {
            "request": "join", "ptype": "publisher", "room": room, "id": user_id, "display": user_id}})
        return handle

    def leave(self, handle: int) -> None:
        self._post(f"{self.url}/{self.session}/{handle}", {"janus": "detach"})

    def keepalive(self) -> None:
        self._post(f"{self.url}/{self.session}", {"janus": "keepalive"})

    def close(self) -> None:
        self._post(f"{self.url}/{self.session}", {"janus": "destroy"})


ROBOT = "cloudrec-robot:"


def robots_in(janus: JanusHttp, room: str) -> list[str]:
    """The UserIds of the robots in the room, as their display names say (`cloudrec-robot:<UserId>#<tag>`)."""
    return [str(p["display"])[len(ROBOT):].rpartition("#")[0] for p in janus.participants(room)
            if str(p.get("display", "")).startswith(ROBOT)]
