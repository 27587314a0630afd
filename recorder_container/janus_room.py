"""The room as a Janus VideoRoom (DESIGN.md room mapping), reached over Janus's HTTP API, with
aiortc subscribers: the `Room` the recorder uses in production.

The robot joins as a participant that publishes nothing; the room's events tell who
publishes; `listparticipants` tells who is present; each subscribed publisher gets its own
Janus subscriber handle and peer connection (`subscriber.FeedSubscriber`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from chalicelib.apps import RoomBackend
from chalicelib.subscription import PublishedStream, Publisher
from recorder_container import capture_time, codec_seam
from recorder_container.janus import VIDEOROOM, JanusError, JanusSession, RoomAddress
from recorder_container.room import FrameSink, RoomUnavailableError, Subscription, SubscriptionError
from recorder_container.subscriber import FeedSubscriber

log = logging.getLogger(__name__)

ROBOT_DISPLAY_PREFIX = "cloudrec-robot:"
NO_SUCH_ROOM = 426
ID_EXISTS = 436
# what a lost or refusing Janus raises: the room is unavailable until it is joined again
_TRANSPORT = (JanusError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class RobotTags:
    """How the app's recording robots know each other in a room. A participant chooses its
    display name, so a name alone proves nothing (anyone could opt out of being recorded by
    calling themselves a robot): a robot's name carries a tag made with the app's key over the
    room and the robot's id in it, which nobody without the key can make, and which a copy of
    the name under another id does not match."""

    key: str
    room: str

    def tag(self, janus_id: str, user_id: str) -> str:
        message = f"cloudrec-robot|{self.room}|{janus_id}|{user_id}".encode()
        return hmac.new(self.key.encode(), message, hashlib.sha256).hexdigest()[:16]

    def display(self, janus_id: str, user_id: str) -> str:
        return f"{ROBOT_DISPLAY_PREFIX}{user_id}#{self.tag(janus_id, user_id)}"

    def numeric_id(self, user_id: str) -> int:
        """The robot's id in a room with integer ids: chosen, so that its tag can name it."""
        digest = hmac.new(self.key.encode(), f"cloudrec-robot-id|{self.room}|{user_id}".encode(), hashlib.sha256)
        return int.from_bytes(digest.digest()[:6], "big") or 1  # 48 bits: exact in every JSON client

    def is_robot(self, participant: dict[str, Any]) -> bool:
        display = str(participant.get("display", ""))
        if not display.startswith(ROBOT_DISPLAY_PREFIX) or "#" not in display:
            return False
        user_id, _, tag = display[len(ROBOT_DISPLAY_PREFIX):].rpartition("#")
        return hmac.compare_digest(tag, self.tag(str(participant.get("id", "")), user_id))


def address_of(sdkappid: int, room_id: str, room_id_type: int, robot_user_id: str, backend: RoomBackend,
               tags: RobotTags) -> RoomAddress | None:
    """Map a TRTC room to its Janus room (DESIGN.md; "<SdkAppId>/<RoomId>" where the app's rooms
    have a namespace on a shared Janus); None when this Janus cannot host it (a string room on a
    Janus without `string_ids`)."""
    if backend.string_ids:
        room = f"{sdkappid}/{room_id}" if backend.room_namespace else room_id
        return RoomAddress(room, robot_user_id, tags.display(robot_user_id, robot_user_id), backend.room_pin)
    if room_id_type == 0:
        return None
    numeric = tags.numeric_id(robot_user_id)
    return RoomAddress(int(room_id), numeric, tags.display(str(numeric), robot_user_id), backend.room_pin)


def parse_publisher(data: dict[str, Any], tags: RobotTags) -> Publisher:
    """A publisher as Janus's VideoRoom describes it (multistream `streams` list)."""
    streams = tuple(
        PublishedStream(mid=str(st.get("mid", "")), kind=str(st.get("type", "")), codec=str(st.get("codec", "")),
                        description=str(st.get("description", "")), disabled=bool(st.get("disabled", False)),
                        simulcast=bool(st.get("simulcast", False)))
        for st in data.get("streams", []) if st.get("type") in ("audio", "video")
    )
    return Publisher(user_id=str(data["id"]), streams=streams, robot=tags.is_robot(data))


def apply_event(publishers: dict[str, Publisher], data: dict[str, Any], tags: RobotTags) -> bool:
    """Update the room's publishers from a VideoRoom event; True if they changed."""
    changed = False
    for pub in data.get("publishers", []) or []:
        parsed = parse_publisher(pub, tags)
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


@dataclass
class _Connection:
    """A Janus session and the robot's handle in the room."""

    janus: JanusSession
    handle: int | None = None


class JanusRoom:
    """A Janus VideoRoom as a `Room`. Owned by the event loop that uses it.

    `remux_h264`: H.264 reaches the sink as the publisher encoded it (single-stream recording);
    otherwise every video is decoded (mixed recording). It applies to the whole process."""

    def __init__(self, address: RoomAddress, backend: RoomBackend, remux_h264: bool, tags: RobotTags) -> None:
        self.address = address
        self._backend = backend
        self._tags = tags
        self._conn: _Connection | None = None
        self._joined = False
        self.id_taken = False  # the last join found the robot's id held by someone it could not remove
        self._publishers: dict[str, Publisher] = {}  # in the order they were seen
        codec_seam.install(remux_h264)
        capture_time.install()  # the publishers' capture times, where the SFU forwards them

    @property
    def joined(self) -> bool:
        return self._joined

    async def _session(self) -> _Connection:
        if self._conn is None:
            janus = JanusSession(self._backend.janus_url, self._backend.api_secret, self._backend.token)
            try:
                await janus.__aenter__()
            except _TRANSPORT as exc:
                raise RoomUnavailableError(f"cannot reach Janus: {type(exc).__name__}") from exc
            self._conn = _Connection(janus)
        return self._conn

    async def _handle(self) -> tuple[JanusSession, int]:
        conn = await self._session()
        if conn.handle is None:
            conn.handle = await conn.janus.attach(VIDEOROOM)
            conn.janus.events_of(conn.handle)  # start collecting room events
        return conn.janus, conn.handle

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        janus, handle = await self._handle()
        return await janus.request(handle, body)

    async def join(self) -> bool:
        if self._joined:
            return True
        body: dict[str, Any] = {"request": "join", "ptype": "publisher", "room": self.address.room,
                                "id": self.address.robot_id, "display": self.address.display}
        if self.address.pin:
            body["pin"] = self.address.pin
        try:
            if not (await self._request({"request": "exists", "room": self.address.room})).get("exists"):
                return False
            try:
                joined = await self._request(body)
            except JanusError as exc:
                if exc.code != ID_EXISTS or not await self._take_id_back():
                    raise
                joined = await self._request(body)
        except JanusError as exc:
            if exc.code in (NO_SUCH_ROOM, ID_EXISTS):
                log.info("cannot join the room yet: %s", exc.reason)
                return False
            raise RoomUnavailableError(str(exc)) from exc
        except _TRANSPORT as exc:
            raise RoomUnavailableError(f"joining failed: {type(exc).__name__}") from exc
        self._joined, self.id_taken = True, False
        apply_event(self._publishers, joined, self._tags)
        log.info("robot joined the room", extra={"publishers": len(self._publishers)})
        return True

    async def _take_id_back(self) -> bool:
        """Remove whoever holds the robot's id, as TRTC lets the later of two entrants with one
        UserId stay. Only the holder of the task's lease joins, so a robot holding it is the
        recorder before this one, dead (Janus would refuse the id until its session timed out);
        anyone else squats it. False if it could not be removed (the room has a secret the
        app's backend does not give): the robot then waits, and `id_taken` says why."""
        data = await self._request({"request": "listparticipants", "room": self.address.room})
        holder = next((p for p in data.get("participants", []) if str(p.get("id")) == str(self.address.robot_id)),
                      None)
        kick: dict[str, Any] = {"request": "kick", "room": self.address.room, "id": self.address.robot_id}
        if self._backend.room_secret:
            kick["secret"] = self._backend.room_secret
        try:
            await self._request(kick)
        except JanusError as exc:
            log.warning("cannot remove the participant that holds the robot's id (%s); waiting", exc.reason)
            self.id_taken = True
            return False
        if holder is not None and self._tags.is_robot(holder):
            log.warning("removed a robot with this id from the room: a recorder before this one died in it")
        else:
            log.warning("removed a participant that held the robot's id (the later entrant stays, as in TRTC)")
        return True

    def publishers(self) -> tuple[Publisher, ...]:
        """The publishers after the room events received so far (a destroyed room is left)."""
        if self._conn is not None and self._conn.handle is not None:
            events = self._conn.janus.events_of(self._conn.handle)
            while not events.empty():
                data = events.get_nowait().get("plugindata", {}).get("data", {})
                if data.get("videoroom") == "destroyed":
                    self._joined = False
                apply_event(self._publishers, data, self._tags)
        return tuple(self._publishers.values())

    async def anchors_present(self) -> bool:
        try:
            data = await self._request({"request": "listparticipants", "room": self.address.room})
        except JanusError as exc:
            if exc.code == NO_SUCH_ROOM:
                return False
            raise RoomUnavailableError(str(exc)) from exc
        except _TRANSPORT as exc:
            raise RoomUnavailableError(f"listing the room failed: {type(exc).__name__}") from exc
        return any(not self._tags.is_robot(p) for p in data.get("participants", []))

    async def subscribe(self, feed: str, mids: Sequence[str], layers: Mapping[str, int],
                        sink: FrameSink) -> Subscription:
        conn = await self._session()
        sub = FeedSubscriber(conn.janus, self.address, feed, mids, self._backend.ice_servers, sink, layers)
        try:
            await sub.start()
        except (JanusError, TimeoutError, OSError, ValueError) as exc:
            await sub.close()
            raise SubscriptionError(f"subscribing to {feed} failed ({exc})") from exc
        except aiohttp.ClientError as exc:
            await sub.close()
            raise RoomUnavailableError(f"subscribing failed: {type(exc).__name__}") from exc
        return sub

    async def leave(self) -> None:
        conn, self._conn = self._conn, None
        self._publishers = {}
        if conn is None:
            self._joined = False
            return
        if conn.handle is not None:
            if self._joined:
                try:
                    await conn.janus.request(conn.handle, {"request": "leave"})
                except (JanusError, TimeoutError, aiohttp.ClientError) as exc:
                    log.warning("leaving the room failed: %s", exc)
            try:
                await conn.janus.detach(conn.handle)
            except _TRANSPORT:
                pass
        self._joined = False
        await conn.janus.__aexit__(None, None, None)
