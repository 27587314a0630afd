"""Which streams a task records: StreamType, MediaId, allow/block lists, prefix rules, robots, 25."""

from __future__ import annotations

from chalicelib.models import RecordParams, SubscribeStreamUserIds
from chalicelib.subscription import PublishedStream, Publisher, matches, select

AV = (PublishedStream("0", "audio", "opus"), PublishedStream("1", "video", "h264"))
SCREEN = PublishedStream("2", "video", "h264", description="aux")


def pubs(*names: str, screen: bool = False) -> list[Publisher]:
    return [Publisher(n, AV + ((SCREEN,) if screen else ())) for n in names]


def picked(publishers: list[Publisher], rules: SubscribeStreamUserIds | None = None, **params: int) -> list[tuple]:
    return [(s.user_id, s.kind, s.media_id) for s in select(publishers, RecordParams(RecordMode=1, **params), rules)]


def test_everything_by_default_in_join_order() -> None:
    assert picked(pubs("a", "b")) == [("a", "audio", "main"), ("a", "video", "main"),
                                      ("b", "audio", "main"), ("b", "video", "main")]


def test_stream_type_and_media_id() -> None:
    assert picked(pubs("a"), StreamType=1) == [("a", "audio", "main")]
    assert picked(pubs("a"), StreamType=2) == [("a", "video", "main")]
    both = pubs("a", screen=True)
    assert picked(both) == [("a", "audio", "main"), ("a", "video", "main"), ("a", "video", "aux")]
    assert picked(both, MediaId=1) == [("a", "audio", "main"), ("a", "video", "main")]
    assert picked(both, MediaId=2) == [("a", "audio", "main"), ("a", "video", "aux")]


def test_allow_and_block_lists_per_kind() -> None:
    rules = SubscribeStreamUserIds(SubscribeVideoUserIds=["a"], UnSubscribeAudioUserIds=["a"])
    assert picked(pubs("a", "b"), rules) == [("a", "video", "main"), ("b", "audio", "main")]


def test_prefix_rules() -> None:
    room = {"teacher_1", "teacher_2", "student"}
    assert matches(["teacher.*$"], "teacher_1", room) and not matches(["teacher.*$"], "student", room)
    # a user literally named like the rule makes it an exact rule
    assert not matches(["teacher.*$"], "teacher_1", room | {"teacher.*$"})
    assert matches(["teacher.*$"], "teacher.*$", room | {"teacher.*$"})
    rules = SubscribeStreamUserIds(SubscribeAudioUserIds=["teacher.*$"], SubscribeVideoUserIds=["teacher.*$"])
    assert [u for u, _, _ in picked(pubs("teacher_1", "student", "teacher_2"), rules)] == [
        "teacher_1", "teacher_1", "teacher_2", "teacher_2"]


def test_robots_disabled_streams_and_the_limit() -> None:
    robot = Publisher("mixer", AV, robot=True)
    off = Publisher("c", (PublishedStream("0", "audio", disabled=True), PublishedStream("1", "video")))
    assert picked([robot, off]) == [("c", "video", "main")]
    assert picked([robot], SubscribeAbility=1) == [("mixer", "audio", "main"), ("mixer", "video", "main")]
    many = pubs(*[f"u{i:02d}" for i in range(20)])
    chosen = picked(many)
    assert len(chosen) == 25 and chosen[-1] == ("u12", "audio", "main")


def test_recorder_answers_without_abs_send_time() -> None:
    from recorder_container.subscriber import without_bandwidth_estimation

    offer = ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v0\r\n"
             "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
             "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
             "a=rtpmap:96 H264/90000\r\n")
    assert without_bandwidth_estimation(offer) == offer.replace(
        "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n", "")
