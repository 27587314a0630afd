"""The recorder's decisions, one pass of its control loop at a time, without IO: whether the
task is over (Delete, MaxIdleTime) or this recorder's part in it is (the platform stops it:
hand the task over; the lease is lost: just leave), when to extend the lease,
when to (re)join the room, when to bring the subscriptions in line with the room and the
task, and when to ask who is present. `recorder.Recorder` does what they say.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.events import LeaveCode
from chalicelib.subscription import Publisher
from chalicelib.tasks import STOP, TaskRecord

JOIN_RETRY_S = 2.0
FOLLOW_S = 5.0  # re-check subscriptions this often even without news from the room
PRESENCE_S = 2.0  # how often the room's participants are listed (for MaxIdleTime)


class IdleClock:
    """Counts how long the room has had no anchor; a present anchor resets it (seed:
    an anchor who is present but not sending does not start the countdown)."""

    def __init__(self, max_idle_s: float, now: float) -> None:
        self._max = max_idle_s
        self._empty_since: float | None = now

    def observe(self, anchors_present: bool, now: float) -> None:
        if anchors_present:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = now

    def expired(self, now: float) -> bool:
        return self._empty_since is not None and now - self._empty_since >= self._max


@dataclass(frozen=True)
class Seen:
    """What one pass of the loop found."""

    now: float
    task: TaskRecord | None  # as the heartbeat or read returned it; None: the lease is lost
    stop_signal: bool  # the platform stops this recorder (SIGTERM): the task goes on elsewhere
    joined: bool
    publishers: tuple[Publisher, ...] = ()
    anchors: bool | None = None  # the presence poll's answer, when one ran since the last pass


@dataclass(frozen=True)
class Step:
    """What to do now. `join`: enter the room, and follow it at once if that worked."""

    leave: LeaveCode | None = None  # the task is over, for this reason
    lease_lost: bool = False  # another recorder owns the task: leave without ending it
    handover: bool = False  # this recorder stops, the task does not: finish the files, give the lease up
    join: bool = False
    follow: bool = False
    poll_presence: bool = False


class Control:
    """Timers and memory of the control loop; `decide` is a pure function of them and of `Seen`."""

    def __init__(self, heartbeat_s: float, max_idle_s: float, now: float) -> None:
        self._heartbeat_s = heartbeat_s
        self._idle = IdleClock(max_idle_s, now)
        self._next_heartbeat = now
        self._next_join = now
        self._next_follow = now
        self._next_presence = now
        self._publishers: tuple[Publisher, ...] | None = None
        self._config_version = -1
        self._anchors = False

    def heartbeat_due(self, now: float) -> bool:
        """Whether this pass extends the lease (the others only read the task); a yes is taken."""
        if now < self._next_heartbeat:
            return False
        self._next_heartbeat = now + self._heartbeat_s
        return True

    def decide(self, seen: Seen) -> Step:
        now, task = seen.now, seen.task
        if task is None:
            return Step(lease_lost=True)
        if task.desired == STOP:
            return Step(leave=LeaveCode(task.leave_code) if task.leave_code is not None else LeaveCode.API_STOP)
        if seen.stop_signal:
            return Step(handover=True)
        if seen.anchors is not None:
            self._anchors = seen.anchors
        self._idle.observe(seen.joined and self._anchors, now)
        if self._idle.expired(now):
            return Step(leave=LeaveCode.IDLE)
        if not seen.joined:
            self._publishers, self._anchors = None, False
            join = now >= self._next_join
            if join:
                self._next_join = now + JOIN_RETRY_S
            return Step(join=join)
        follow = (seen.publishers != self._publishers or task.config_version != self._config_version
                  or now >= self._next_follow)
        if follow:
            self._publishers, self._config_version = seen.publishers, task.config_version
            self._next_follow = now + FOLLOW_S
        presence = now >= self._next_presence
        if presence:
            self._next_presence = now + PRESENCE_S
        return Step(follow=follow, poll_presence=presence)

    def joined(self, publishers: tuple[Publisher, ...], config_version: int, now: float) -> None:
        """The executor joined and followed at once: the room as it was then is the one followed."""
        self._publishers, self._config_version = publishers, config_version
        self._next_follow = now + FOLLOW_S
