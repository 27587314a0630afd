"""The Janus side of the room: TRTC room → Janus room, and VideoRoom events → publishers."""

from __future__ import annotations

from chalicelib.apps import RoomBackend
from chalicelib.subscription import PublishedStream, Publisher
from recorder_container.janus_room import address_of, apply_event, is_robot, parse_publisher


def test_room_mapping() -> None:
    string_ids = RoomBackend("http://j/janus", string_ids=True, room_pin="p")
    integer_ids = RoomBackend("http://j/janus", string_ids=False)
    numeric = address_of("3560", 1, "rec", string_ids)
    assert numeric is not None and (numeric.room, numeric.robot_id, numeric.pin) == ("3560", "rec", "p")
    assert address_of("room a", 0, "rec", string_ids).room == "room a"  # type: ignore[union-attr]
    assert address_of("3560", 1, "rec", integer_ids).room == 3560  # type: ignore[union-attr]
    assert address_of("3560", 1, "rec", integer_ids).robot_id is None  # type: ignore[union-attr]
    assert address_of("room a", 0, "rec", integer_ids) is None
    assert is_robot({"display": numeric.display}) and not is_robot({"display": "alice"})


def test_videoroom_events_update_the_publishers() -> None:
    alice = {"id": "alice", "streams": [{"mid": "0", "type": "audio", "codec": "opus"},
                                        {"mid": "1", "type": "video", "codec": "h264", "simulcast": True},
                                        {"mid": "2", "type": "data"}]}
    assert parse_publisher(alice) == Publisher("alice", (PublishedStream("0", "audio", "opus"),
                                                         PublishedStream("1", "video", "h264", simulcast=True)))
    publishers: dict[str, Publisher] = {}
    assert apply_event(publishers, {"publishers": [alice, {"id": 7, "display": "cloudrec-robot:x", "streams": []}]})
    assert list(publishers) == ["alice", "7"] and publishers["7"].robot
    assert not apply_event(publishers, {"publishers": [alice]})  # nothing new
    assert apply_event(publishers, {"unpublished": "alice"}) and list(publishers) == ["7"]
    assert apply_event(publishers, {"videoroom": "destroyed"}) and publishers == {}
