"""File names exactly as the seed gives them (spec §7)."""

from __future__ import annotations

from chalicelib.naming import TaskNaming, b64_name, utc17


def test_b64_variant() -> None:
    assert b64_name("1686119") == "MTY4NjExOQ.."  # the seed's example
    assert b64_name("ab?") == "YWI-"
    assert b64_name("ab?x") == "YWI-eA.."


def test_utc17() -> None:
    assert utc17(1_622_425_551_884) == "20210531014551884"
    assert utc17(1_768_908_622_488) == "20260120113022488"  # as in a real TRTC capture


def test_single_stream_names() -> None:
    n = TaskNaming("T+k.", 1400123456, "12345", 1, ("prefix1", "prefix2"))
    assert n.directory == "prefix1/prefix2/T+k./"
    assert n.playlist("1686119", "main", "video") == "1400123456_12345__UserId_s_MTY4NjExOQ..__UserId_e_main_video.m3u8"
    assert n.segment("1686119", "main", "video", 1_622_425_551_884) == (
        "1400123456_12345__UserId_s_MTY4NjExOQ..__UserId_e_main_video_20210531014551884.ts")


def test_string_room_ha_and_mixed_names() -> None:
    n = TaskNaming("T", 1400000001, "room/1", 0, (), ha_index=2)
    assert n.directory == "T/"
    assert n.playlist("u", "aux", "video").startswith("ha2_1400000001_cm9vbS8x__UserId_s_dQ..__UserId_e_aux_video")
    assert n.mixed_playlist() == "ha2_1400000001_cm9vbS8x.m3u8"
    assert n.mixed_segment(1_768_908_622_488) == "ha2_1400000001_cm9vbS8x_20260120113022488.ts"


def test_utc17_reads_back() -> None:
    from chalicelib.naming import utc17, utc17_ms

    for ms in (0, 1_622_425_551_884, 1_768_908_622_488):
        assert utc17_ms(utc17(ms)) == ms
    assert utc17_ms("20260120113022488") == 1_768_908_622_488
