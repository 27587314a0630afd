"""The room as the recorder sees it, whatever carries it (Janus VideoRoom over WebRTC in
`janus_room`, an in-memory room in the tests): the robot joins, sees who publishes and who is
present, subscribes to streams and receives their frames, and leaves.

A subscription hands every frame to a sink as it arrives — H.264 as the publisher encoded it
(`EncodedVideo`), other video decoded (`av.VideoFrame`), sound decoded (`av.AudioFrame`) —
with its arrival time, and a last `Received` whose frame is None when the stream ends. (A
push, not a pull `recv()`: the transport already runs one reader per track, and a pull would
need a queue and another task per subscription to merge its tracks.) Nothing here imports
aiortc or speaks Janus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.subscription import Publisher


class RoomUnavailableError(Exception):
    """The room's server cannot be reached, or dropped the robot: leave, and join again later."""


class SubscriptionError(Exception):
    """One publisher's streams could not be subscribed now (gone, not yet negotiable): try again later."""


@dataclass(frozen=True)
class Received:
    """One frame of a subscribed stream, as it arrived."""

    feed: str  # the publisher (its UserId)
    mid: str  # the publisher's stream
    frame: Any  # EncodedVideo | av.VideoFrame | av.AudioFrame; None: the stream ended
    arrival: float  # wall clock, seconds
    source: object  # the stream's identity in this subscription: a new one whenever it is subscribed again
    media_time: float | None = None  # where it belongs on the recorder's clock (sender_clock); None: by arrival


FrameSink = Callable[[Received], None]


class Subscription(Protocol):
    """Some streams of one publisher, being received."""

    feed: str
    mids: tuple[str, ...]

    async def request_keyframe(self, mid: str) -> None:
        """Ask the publisher for a keyframe of its video stream `mid`."""

    async def set_layer(self, mid: str, layer: int) -> None:
        """Receive another simulcast layer (0 = the smallest) of the publisher's stream `mid`."""

    async def packet_stats(self) -> dict[str, tuple[int, int]]:
        """Per stream: packets received and lost."""

    async def close(self) -> None:
        """Stop receiving; the sink gets each stream's end."""


class Room(Protocol):
    """One room, with the robot in it (or on its way)."""

    @property
    def joined(self) -> bool:
        """Whether the robot is in the room now."""

    async def join(self) -> bool:
        """Enter the room; False when it cannot yet (no such room, the robot's id is taken).
        Raises RoomUnavailableError when the server cannot be reached."""

    @property
    def id_taken(self) -> bool:
        """Whether the last join failed because someone the robot cannot remove holds its id."""

    def publishers(self) -> tuple[Publisher, ...]:
        """Who publishes what, in the order they came, as of the room's latest news."""

    async def anchors_present(self) -> bool:
        """Whether anyone but recording robots is in the room (publishing or not)."""

    async def subscribe(self, feed: str, mids: Sequence[str], layers: Mapping[str, int],
                        sink: FrameSink) -> Subscription:
        """Receive streams `mids` of publisher `feed` (simulcast streams at `layers`), frames to
        `sink`. Raises SubscriptionError (this feed, now) or RoomUnavailableError."""

    async def leave(self) -> None:
        """Leave the room and let go of the server (idempotent); `join` enters again."""
