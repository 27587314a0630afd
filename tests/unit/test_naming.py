"""File names exactly as the seed gives them (spec §7)."""

from __future__ import annotations

import pytest

from chalicelib.naming import TaskNaming, b64_name, b64_value, output_name, parse, utc17

T = 1_622_425_551_884


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


@pytest.mark.parametrize("user", ["1686119", "a+b/c=d", "ab?", "ab?x", "用户", "x" * 32])
@pytest.mark.parametrize("room,room_type", [("12345", 1), ("room/1 +=x", 0)])
@pytest.mark.parametrize("ha", [0, 1, 3])
def test_names_read_back(user: str, room: str, room_type: int, ha: int) -> None:
    """Every name the recorder writes parses back to what it was made from, whatever the ids
    hold ("+", "/", "=" included), with ha prefixes and AvMerge's audio_video."""
    n = TaskNaming("Ab+cd/ef+gh.", 1400000001, room, room_type, ("p",), ha_index=ha)
    for media, track in (("main", "audio"), ("main", "video"), ("aux", "video"), ("main", "audio_video")):
        stem = n.stream_stem(user, media, track)
        for name, start in ((n.playlist(user, media, track), None), (n.segment(user, media, track, T), T)):
            got = parse(name)
            assert got is not None, name
            assert (got.stem, got.ha_index, got.sdkappid, got.user_id, got.media_id, got.track_type, got.start_ms) == (
                stem, ha, 1400000001, user, media, track, start)
            assert got.room == (room if room_type == 1 else b64_name(room)) and not got.mixed
            assert got.output_stem == stem.removesuffix(f"_{track}")
            assert b64_value(got.room) == room if room_type == 0 else got.room == room
    for name, start in ((n.mixed_playlist(), None), (n.mixed_segment(T), T)):
        got = parse(name)
        assert got is not None and got.mixed and got.user_id == "" and got.media_id is None
        assert (got.stem, got.output_stem, got.ha_index, got.start_ms, got.track_type) == (
            n.mixed_stem(), n.mixed_stem(), ha, start, "audio_video")


def test_output_names_and_what_is_no_recording_name() -> None:
    assert output_name("1400_1__UserId_s_dQ..__UserId_e_main", "mp4", 2, split=True) == (
        "1400_1__UserId_s_dQ..__UserId_e_main_2.mp4")
    assert output_name("1400_1", "m4a", 1, split=False) == "1400_1.m4a"
    trtc = parse("1400_1__UserId_s_dQ..__UserId_e_main_video_1.m3u8")  # TRTC_Merge accepts a "_<n>" playlist
    assert trtc is not None and trtc.stem == "1400_1__UserId_s_dQ..__UserId_e_main_video"
    for name in ("notes.txt", "rec.m3u8", "1400_1__UserId_s_dQ..__UserId_e_main_video.ts",  # a segment needs a time
                 "1400_1_20210531014551884.m3u8", "1400_1__UserId_s_!!__UserId_e_main_video.m3u8",
                 "1400_1__UserId_s_dQ..__UserId_e_side_video.m3u8", "1400_1_2021053101455188.ts"):
        assert parse(name) is None, name
    with pytest.raises(ValueError):
        b64_value("not base64!")


def test_a_participant_id_of_any_length_gives_a_short_stable_file_name() -> None:
    """Anyone in the room chooses their id: 2 KB of it must not make a key S3 refuses (1024 bytes)."""
    from chalicelib.naming import MAX_NAME_USER_BYTES, TaskNaming, file_user_id, parse

    naming = TaskNaming("T+1.", 1400000001, "8848", 1, ("rec",))
    huge, other = "é" * 1000, "é" * 999 + "e"
    stem = naming.stream_stem(huge, "main", "video")
    key = naming.directory + naming.segment(huge, "main", "video", 1_796_000_000_000)
    assert len(key.encode()) < 300 and stem == naming.stream_stem(huge, "main", "video")  # stable
    assert stem != naming.stream_stem(other, "main", "video")  # distinct
    assert file_user_id("alice") == "alice" and file_user_id("a" * MAX_NAME_USER_BYTES) == "a" * MAX_NAME_USER_BYTES
    read = parse(key.rsplit("/", 1)[1])
    assert read is not None and read.user_id == file_user_id(huge) and read.user_id.startswith("é" * 20)
