"""The robot's presence in a Janus VideoRoom: where the room is, joining, leaving, and who
else is there (anchors are participants other than recording robots)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chalicelib.apps import RoomBackend
from chalicelib.subscription import PublishedStream, Publisher
from recorder_container.janus import JanusError, JanusSession

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
ROBOT_DISPLAY_PREFIX = "cloudrec-robot:"
NO_SUCH_ROOM = 426
ID_EXISTS = 436


@dataclass(frozen=True)
class RoomAddress:
    """A TRTC room as Janus names it, and the robot's identity in it."""

    room: int | str
    robot_id: str | None  # None: Janus assigns a numeric id (rooms without string_ids)
    display: str
    pin: str


def janus_room(room_id: str, room_id_type: int, robot_user_id: str, backend: RoomBackend) -> RoomAddress | None:
    """Map a TRTC room to its Janus room (DESIGN.md); None when this Janus cannot host it
    (a string room on a Janus without `string_ids`)."""
    display = ROBOT_DISPLAY_PREFIX + robot_user_id
    if backend.string_ids:
        return RoomAddress(room_id, robot_user_id, display, backend.room_pin)
    if room_id_type == 0:
        return None
    return RoomAddress(int(room_id), None, display, backend.room_pin)


def is_robot(participant: dict[str, Any]) -> bool:
    return str(participant.get("display", "")).startswith(ROBOT_DISPLAY_PREFIX)


def parse_publisher(data: dict[str, Any]) -> Publisher:
    """A publisher as Janus's VideoRoom describes it (multistream `streams` list)."""
    streams = tuple(
        PublishedStream(mid=str(st.get("mid", "")), kind=str(st.get("type", "")), codec=str(st.get("codec", "")),
                        description=str(st.get("description", "")), disabled=bool(st.get("disabled", False)),
                        simulcast=bool(st.get("simulcast", False)))
        for st in data.get("streams", []) if st.get("type") in ("audio", "video")
    )
    return Publisher(user_id=str(data["id"]), streams=streams, robot=is_robot(data))


def apply_event(publishers: dict[str, Publisher], data: dict[str, Any]) -> bool:
    """Update the room's publishers from a VideoRoom event; True if they changed."""
    changed = False
    for pub in data.get("publishers", []) or []:
        parsed = parse_publisher(pub)
        if publishers.get(parsed.user_id) != parsed:
            publishers[parsed.user_id] = parsed
            changed = True
    for key in ("unpublished", "leaving", "kicked"):
        gone = data.get(key)
        if gone is not None and str(gone) in publishers:
            del publishers[str(gone)]
            changed = True
    if data.get("videoroom") == "destroyed" and publishers:
        publishers.clear()
        changed = True
    return changed


class RobotPresence:
    """Joins the room as a participant that publishes nothing, and lists the others."""

    def __init__(self, janus: JanusSession, address: RoomAddress) -> None:
        self._janus = janus
        self.address = address
        self._handle: int | None = None
        self.joined = False
        self.publishers: dict[str, Publisher] = {}  # in the order they were seen

    async def room_exists(self) -> bool:
        handle = await self._ensure_handle()
        data = await self._janus.request(handle, {"request": "exists", "room": self.address.room})
        return bool(data.get("exists"))

    async def _ensure_handle(self) -> int:
        if self._handle is None:
            self._handle = await self._janus.attach(VIDEOROOM)
            self._janus.events_of(self._handle)  # start collecting room events
        return self._handle

    async def try_join(self) -> bool:
        """Join if the room exists and our id is free; False to try again later."""
        if self.joined:
            return True
        try:
            if not await self.room_exists():
                return False
            body: dict[str, Any] = {"request": "join", "ptype": "publisher", "room": self.address.room,
                                    "display": self.address.display}
            if self.address.robot_id is not None:
                body["id"] = self.address.robot_id
            if self.address.pin:
                body["pin"] = self.address.pin
            joined = await self._janus.request(await self._ensure_handle(), body)
        except JanusError as exc:
            if exc.code in (NO_SUCH_ROOM, ID_EXISTS):
                log.info("cannot join the room yet: %s", exc.reason)
                return False
            raise
        self.joined = True
        apply_event(self.publishers, joined)
        log.info("robot joined the room", extra={"publishers": len(self.publishers)})
        return True

    def take_events(self) -> bool:
        """Apply the room events received since the last call; True if the publishers changed."""
        if self._handle is None:
            return False
        events = self._janus.events_of(self._handle)
        changed = False
        while not events.empty():
            event = events.get_nowait()
            data = event.get("plugindata", {}).get("data", {})
            if data.get("videoroom") == "destroyed":
                self.joined = False
            changed = apply_event(self.publishers, data) or changed
        return changed

    async def participants(self) -> list[dict[str, Any]]:
        handle = await self._ensure_handle()
        try:
            data = await self._janus.request(handle, {"request": "listparticipants", "room": self.address.room})
        except JanusError as exc:
            if exc.code == NO_SUCH_ROOM:
                return []
            raise
        return list(data.get("participants", []))

    async def anchors(self) -> list[dict[str, Any]]:
        """Participants who are not recording robots (present, publishing or not)."""
        return [p for p in await self.participants() if not is_robot(p)]

    async def leave(self) -> None:
        if self._handle is None:
            return
        if self.joined:
            try:
                await self._janus.request(self._handle, {"request": "leave"})
            except (JanusError, TimeoutError) as exc:
                log.warning("leaving the room failed: %s", exc)
            self.joined = False
        try:
            await self._janus.detach(self._handle)
        except JanusError:
            pass
        self._handle = None
