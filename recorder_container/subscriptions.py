"""Which publisher streams a recording receives: kept in line with what the recording wants
(single-stream and mixed alike), subscribed through the `Room`, each feed's frames to the
recording's sink. A feed whose subscription fails is tried again at the next `follow`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from recorder_container.background import Background
from recorder_container.room import FrameSink, Room, Subscription, SubscriptionError

log = logging.getLogger(__name__)

StreamRef = tuple[str, str]  # (feed, mid): one stream of one publisher


class Subscriptions:
    """A recording's subscriptions in its room. Owned by the event loop."""

    def __init__(self, room: Room, sink: FrameSink, background: Background) -> None:
        self._room = room
        self._sink = sink
        self._background = background
        self._subs: dict[str, Subscription] = {}
        self._layers: dict[StreamRef, int] = {}  # the simulcast layer asked for, per stream

    @property
    def feeds(self) -> frozenset[str]:
        return frozenset(self._subs)

    async def follow(self, want: Mapping[str, Sequence[str]], layers: Mapping[StreamRef, int] | None = None) -> None:
        """Receive exactly streams `want` (feed → its mids), simulcast ones at `layers`: a feed
        whose streams changed is subscribed anew, a feed no longer wanted is dropped."""
        layers = layers or {}
        for feed, sub in list(self._subs.items()):
            if tuple(want.get(feed, ())) != sub.mids:
                del self._subs[feed]
                self._forget_layers(feed)
                await sub.close()
            else:  # the same streams: the layer that fits now (a window changed size)
                for (of, mid), layer in layers.items():
                    if of == feed:
                        await sub.set_layer(mid, layer)
                self._took_layers(feed, layers)
        for feed, mids in want.items():
            if feed in self._subs:
                continue
            try:
                self._subs[feed] = await self._room.subscribe(
                    feed, mids, {mid: layer for (of, mid), layer in layers.items() if of == feed}, self._sink)
            except SubscriptionError as exc:
                log.warning("%s; retrying later", exc)
                continue
            self._took_layers(feed, layers)

    def _took_layers(self, feed: str, layers: Mapping[StreamRef, int]) -> None:
        """Log the simulcast layer (0 = the smallest) each stream of `feed` is now received at,
        when it changed: which one the layout chose shows in the recorder's log."""
        for (of, mid), layer in layers.items():
            if of == feed and self._layers.get((of, mid)) != layer:
                self._layers[(of, mid)] = layer
                log.info("receiving %s/%s at simulcast layer %d", of, mid, layer)

    def _forget_layers(self, feed: str) -> None:
        self._layers = {ref: layer for ref, layer in self._layers.items() if ref[0] != feed}

    def request_keyframe(self, feed: str, mid: str) -> None:
        """Ask a subscribed publisher for a keyframe (without waiting for it)."""
        sub = self._subs.get(feed)
        if sub is not None:
            self._background.spawn(sub.request_keyframe(mid), f"keyframe request to {feed}")

    async def packet_stats(self) -> dict[StreamRef, tuple[int, int]]:
        """Per subscribed stream: packets received and lost."""
        return {(feed, mid): counts for feed, sub in self._subs.items()
                for mid, counts in (await sub.packet_stats()).items()}

    async def drop(self) -> None:
        """Close every subscription (the room went away); the next `follow` subscribes again."""
        subs, self._subs = list(self._subs.values()), {}
        self._layers = {}
        for sub in subs:
            await sub.close()
