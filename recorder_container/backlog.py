"""The frames between a producer (the event loop, a compositor) and a stream's writer thread,
bounded in time: a writer that falls behind (a 1080p transcode on one core) sheds video, never
the producer's time, so memory stays bounded and the event loop never blocks."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from recorder_container import h264
from recorder_container.encoded import EncodedVideo

MAX_VIDEO_LAG_S = 1.0  # video queued longer than this: the writer fell behind (1080p decoded: ~30 frames, ~90 MB)
MAX_AUDIO_LAG_S = 10.0  # audio is ~4 KB a frame: only a stuck writer gets this far behind
KEYFRAME_RETRY_S = 1.0
# the writer looks for media this often rather than being woken for every frame (each wake-up is
# a hand-over of the GIL between the event loop and the writer); control items wake it at once
WRITER_POLL_S = 0.05

# kind (video, audio, ended, dropped, end), frame, arrival, source, media time (room.Received)
_Item = tuple[str, Any, float, Any, float | None]


def _restarts_video(frame: Any) -> bool:
    """Whether video can go on from this frame after frames before it were dropped: a decoded
    picture always (it is encoded afresh), H.264 only from a keyframe."""
    return not isinstance(frame, EncodedVideo) or h264.inspect(frame.data, None).keyframe


class Backlog:
    """A writer's queue. `put` never blocks: while the oldest queued video has waited more than
    MAX_VIDEO_LAG_S, new video is dropped, and H.264 after a drop until a keyframe (asked for); what was dropped reaches
    the writer as a "dropped" item, to be counted."""

    def __init__(self, clock: Callable[[], float], request_keyframe: Callable[[], None]) -> None:
        self._clock = clock
        self._request_keyframe = request_keyframe
        self._items: deque[_Item] = deque()
        self._queued_at = {"video": deque[float](), "audio": deque[float]()}
        self._lags = {"video": MAX_VIDEO_LAG_S, "audio": MAX_AUDIO_LAG_S}
        self._dropped = {"video": 0, "audio": 0}
        self._ready = threading.Condition()
        self._awaiting_keyframe = False
        self._last_ask = -1e9
        self._closed = False

    def queued(self, kind: str) -> int:
        """How many frames of `kind` wait for the writer."""
        return len(self._queued_at[kind])

    def put(self, kind: str, frame: Any, arrival: float, source: Any, media_time: float | None = None) -> None:
        now = self._clock()
        ask = False
        with self._ready:
            if self._closed:
                return
            waiting = self._queued_at[kind]
            behind = bool(waiting) and now - waiting[0] > self._lags[kind]
            if kind == "video" and self._awaiting_keyframe and not behind and _restarts_video(frame):
                self._awaiting_keyframe = False
            if behind or (kind == "video" and self._awaiting_keyframe):
                self._dropped[kind] += 1
                if isinstance(frame, EncodedVideo):  # the frames after it refer to it
                    self._awaiting_keyframe = True
                    if now - self._last_ask >= KEYFRAME_RETRY_S:
                        self._last_ask, ask = now, True
            else:
                self._push((kind, frame, arrival, source, media_time), now, wake=False)
        if ask:
            self._request_keyframe()

    def put_control(self, kind: str, source: Any = None) -> None:
        """A control item: "ended" (a source's last frame came) or "end" (nothing is taken after it)."""
        with self._ready:
            if not self._closed:
                self._push((kind, None, 0.0, source, None), None)
                self._closed = kind == "end"

    def _push(self, item: _Item, now: float | None, wake: bool = True) -> None:
        if any(self._dropped.values()):
            self._items.append(("dropped", (self._dropped["video"], self._dropped["audio"]), 0.0, None, None))
            self._dropped = {"video": 0, "audio": 0}
        self._items.append(item)
        if now is not None:
            self._queued_at[item[0]].append(now)
        if wake:
            self._ready.notify()

    def get(self) -> _Item:
        with self._ready:
            while not self._items:
                self._ready.wait(WRITER_POLL_S)
            item = self._items.popleft()
            if item[0] in self._queued_at:
                self._queued_at[item[0]].popleft()
            return item
