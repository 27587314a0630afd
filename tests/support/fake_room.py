"""An in-memory room that a test drives: who is there and publishes what, whether the server
answers, and the frames each subscribed stream delivers — the `Room` port without Janus or
WebRTC, so the recorder's control loop runs in a functional test in seconds."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.subscription import PublishedStream, Publisher
from recorder_container.room import FrameSink, Received, RoomUnavailableError, SubscriptionError


class FakeSubscription:
    def __init__(self, feed: str, mids: Sequence[str], layers: Mapping[str, int], sink: FrameSink) -> None:
        self.feed, self.mids, self.layers, self._sink = feed, tuple(mids), dict(layers), sink
        self.sources = {mid: object() for mid in mids}  # a new identity per subscription, as a new track has
        self.keyframe_requests: list[str] = []
        self.closed = False

    def deliver(self, mid: str, frame: Any, arrival: float) -> None:
        if not self.closed:
            self._sink(Received(self.feed, mid, frame, arrival, self.sources[mid]))

    async def request_keyframe(self, mid: str) -> None:
        self.keyframe_requests.append(mid)

    async def set_layer(self, mid: str, layer: int) -> None:
        self.layers[mid] = layer

    async def packet_stats(self) -> dict[str, tuple[int, int]]:
        return {mid: (0, 0) for mid in self.mids}

    async def close(self) -> None:
        if not self.closed:
            for mid in self.mids:
                self.deliver(mid, None, time.time())
            self.closed = True


class FakeRoom:
    """A `Room` whose state the test sets: `exists`, `taken` (the robot's id is in use),
    `publishers`, `present` (anchors who publish nothing), `failures` (how many of the next
    server calls fail as if Janus were gone)."""

    def __init__(self) -> None:
        self.exists = True
        self.taken = False
        self.present: set[str] = set()
        self.failures = 0
        self.joins = 0
        self.leaves = 0
        self.subscriptions: list[FakeSubscription] = []
        self._publishers: dict[str, Publisher] = {}
        self._joined = False

    # -- the test's side -----------------------------------------------------------------

    def publish(self, user: str, *kinds: str) -> None:
        """`user` publishes one stream of each kind ("audio", "video"), mids "0", "1", …"""
        streams = tuple(PublishedStream(str(i), kind, "opus" if kind == "audio" else "h264")
                        for i, kind in enumerate(kinds))
        self._publishers[user] = Publisher(user, streams)

    def unpublish(self, user: str) -> None:
        self._publishers.pop(user, None)

    def live(self, feed: str) -> FakeSubscription | None:
        """The open subscription of a publisher, if any."""
        return next((s for s in reversed(self.subscriptions) if s.feed == feed and not s.closed), None)

    def _call(self) -> None:
        if self.failures:
            self.failures -= 1
            self._joined = False
            raise RoomUnavailableError("the fake server is down")

    # -- the Room port -------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def id_taken(self) -> bool:
        return self.exists and self.taken

    async def join(self) -> bool:
        self._call()
        if not self.exists or self.taken:
            return False
        self._joined = True
        self.joins += 1
        return True

    def publishers(self) -> tuple[Publisher, ...]:
        return tuple(self._publishers.values())

    async def anchors_present(self) -> bool:
        self._call()
        return bool(self.present or self._publishers)

    async def subscribe(self, feed: str, mids: Sequence[str], layers: Mapping[str, int],
                        sink: FrameSink) -> FakeSubscription:
        self._call()
        if feed not in self._publishers:
            raise SubscriptionError(f"{feed} publishes nothing")
        sub = FakeSubscription(feed, mids, layers, sink)
        self.subscriptions.append(sub)
        return sub

    async def leave(self) -> None:
        self._joined = False
        self.leaves += 1
        for sub in self.subscriptions:
            await sub.close()
