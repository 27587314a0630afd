"""One wall clock for all of a task's streams.

Each track (a source: one subscription of one publisher stream) starts its RTP timestamps at
0. A frame that comes with its place on the recorder's clock (`media_time`: its timestamp
mapped through the sender's reports, sender_clock.py) goes there. One that does not (an
in-memory room) is placed from its source's anchor: the wall-clock time its first frame
arrived, less how long the receiver held it; later samples follow their timestamps from there.
A timestamp that jumps (aiortc takes any backward step for a 32-bit wrap: ~13 h at 90 kHz)
re-anchors the source on the arrival clock and starts a new segment.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FORWARD_JUMP_S = 30.0
MAX_BACKWARD_STEP_S = 0.5


@dataclass
class SourceClock:
    """Maps a source's timestamps (in 1/`rate` s) to wall-clock seconds. Owned by whoever owns
    the source's frames (a writer thread, the mixer under its lock)."""

    rate: int
    latency_s: float = 0.0  # how long the receiver held a sample before handing it out
    _wall0: float | None = None
    _pts0: int = 0
    _last_pts: int | None = None

    def wall(self, pts: int, arrival: float, media_time: float | None = None) -> tuple[float, bool]:
        """Wall-clock time of the sample at `pts` (`media_time` when the receiver knows it), and
        whether the source re-anchored (a jump)."""
        jumped = False
        if self._wall0 is None or self._last_pts is None:
            self._anchor(pts, arrival)
        else:
            step = (pts - self._last_pts) / self.rate
            if step > MAX_FORWARD_JUMP_S or step < -MAX_BACKWARD_STEP_S:
                self._anchor(pts, arrival)
                jumped = True
        self._last_pts = pts
        if media_time is not None:
            return media_time, jumped
        assert self._wall0 is not None
        return self._wall0 + (pts - self._pts0) / self.rate, jumped

    def _anchor(self, pts: int, arrival: float) -> None:
        self._wall0 = arrival - self.latency_s
        self._pts0 = pts
