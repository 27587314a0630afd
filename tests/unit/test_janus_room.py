"""The Janus side of the room: TRTC room → Janus room, VideoRoom events → publishers, and how
the app's robots know each other (a tag only the app's key makes, bound to the robot's id)."""

from __future__ import annotations

from chalicelib.apps import RoomBackend
from chalicelib.subscription import PublishedStream, Publisher
from recorder_container.janus_room import RobotTags, address_of, apply_event, parse_publisher

TAGS = RobotTags("app-usersig-key", "3560")


def test_room_mapping() -> None:
    string_ids = RoomBackend("http://j/janus", string_ids=True, room_pin="p")
    integer_ids = RoomBackend("http://j/janus", string_ids=False)
    numeric = address_of(1400000001, "3560", 1, "rec", string_ids, TAGS)
    assert numeric is not None and (numeric.room, numeric.robot_id, numeric.pin) == ("3560", "rec", "p")
    assert address_of(1400000001, "room a", 0, "rec", string_ids, TAGS).room == "room a"  # type: ignore[union-attr]
    integer = address_of(1400000001, "3560", 1, "rec", integer_ids, TAGS)
    assert integer is not None and integer.room == 3560
    assert integer.robot_id == TAGS.numeric_id("rec") == address_of(1400000001, "3560", 1, "rec", integer_ids, TAGS).robot_id  # type: ignore[union-attr]
    assert isinstance(integer.robot_id, int) and 0 < integer.robot_id < 2 ** 53  # exact in any JSON client
    assert address_of(1400000001, "room a", 0, "rec", integer_ids, TAGS) is None
    shared = RoomBackend("http://j/janus", room_namespace=True)
    assert address_of(1400000001, "3560", 1, "rec", shared, TAGS).room == "1400000001/3560"  # type: ignore[union-attr]
    assert TAGS.is_robot({"id": "rec", "display": numeric.display})
    assert TAGS.is_robot({"id": integer.robot_id, "display": integer.display})


def test_a_display_name_alone_makes_nobody_a_robot() -> None:
    robot = {"id": "rec", "display": TAGS.display("rec", "rec")}
    assert TAGS.is_robot(robot)
    assert not TAGS.is_robot({"id": "mallory", "display": "cloudrec-robot:mallory"})  # the old marker
    assert not TAGS.is_robot({"id": "mallory", "display": robot["display"]})  # a robot's name, copied
    assert not TAGS.is_robot({"id": "mallory", "display": TAGS.display("rec", "mallory")})
    assert not TAGS.is_robot({"id": "rec", "display": RobotTags("other-app", "3560").display("rec", "rec")})
    assert not RobotTags("app-usersig-key", "3561").is_robot(robot)  # another room
    assert not TAGS.is_robot({"id": "rec"}) and not TAGS.is_robot({"display": "cloudrec-robot:#"})


def test_videoroom_events_update_the_publishers() -> None:
    alice = {"id": "alice", "streams": [{"mid": "0", "type": "audio", "codec": "opus"},
                                        {"mid": "1", "type": "video", "codec": "h264", "simulcast": True},
                                        {"mid": "2", "type": "data"}]}
    assert parse_publisher(alice, TAGS) == Publisher("alice", (PublishedStream("0", "audio", "opus"),
                                                               PublishedStream("1", "video", "h264", simulcast=True)))
    publishers: dict[str, Publisher] = {}
    robot = {"id": 7, "display": TAGS.display("7", "x"), "streams": []}
    posing = {"id": "eve", "display": "cloudrec-robot:eve", "streams": [{"mid": "0", "type": "audio"}]}
    assert apply_event(publishers, {"publishers": [alice, robot, posing]}, TAGS)
    assert list(publishers) == ["alice", "7", "eve"] and publishers["7"].robot and not publishers["eve"].robot
    assert not apply_event(publishers, {"publishers": [alice]}, TAGS)  # nothing new
    assert apply_event(publishers, {"unpublished": "alice"}, TAGS) and list(publishers) == ["7", "eve"]
    assert apply_event(publishers, {"videoroom": "destroyed"}, TAGS) and publishers == {}
