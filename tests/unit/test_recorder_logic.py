"""Pure parts of the recorder: the idle countdown and the TRTC room → Janus room mapping."""

from __future__ import annotations

from chalicelib.apps import RoomBackend
from recorder_container.recorder import IdleClock
from recorder_container.room import is_robot, janus_room


def test_idle_clock_counts_only_while_no_anchor_is_present() -> None:
    clock = IdleClock(max_idle_s=10, now=0)
    assert not clock.expired(9.9) and clock.expired(10)
    clock.observe(True, 5)  # an anchor arrived (sending or not)
    assert not clock.expired(100)
    clock.observe(False, 100)  # the room emptied: the countdown starts now
    assert not clock.expired(109) and clock.expired(110)
    clock.observe(False, 105)  # still empty: the countdown keeps its start
    assert clock.expired(110)


def test_room_mapping() -> None:
    string_ids = RoomBackend("http://j/janus", string_ids=True, room_pin="p")
    integer_ids = RoomBackend("http://j/janus", string_ids=False)
    numeric = janus_room("3560", 1, "rec", string_ids)
    assert numeric is not None and (numeric.room, numeric.robot_id, numeric.pin) == ("3560", "rec", "p")
    assert janus_room("room a", 0, "rec", string_ids).room == "room a"  # type: ignore[union-attr]
    assert janus_room("3560", 1, "rec", integer_ids).room == 3560  # type: ignore[union-attr]
    assert janus_room("3560", 1, "rec", integer_ids).robot_id is None  # type: ignore[union-attr]
    assert janus_room("room a", 0, "rec", integer_ids) is None
    assert is_robot({"display": numeric.display}) and not is_robot({"display": "alice"})


def test_plan_slots_keeps_users_and_fills_in_order() -> None:
    from recorder_container.workers import plan_slots

    plan = plan_slots({"a": 2, "b": 2, "c": 2}, {}, per_slot=4, max_slots=3)
    assert plan == {"a": 0, "b": 0, "c": 1}
    # b left, d arrives: users keep their slot, the newcomer takes the free room in slot 0
    assert plan_slots({"a": 2, "c": 2, "d": 2}, plan, per_slot=4, max_slots=3) == {"a": 0, "c": 1, "d": 0}
    # over capacity: the least loaded slot
    full = plan_slots({u: 4 for u in "abcd"}, {}, per_slot=4, max_slots=3)
    assert sorted(full.values()) == [0, 0, 1, 2]
