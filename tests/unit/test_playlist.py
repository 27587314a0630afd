"""Playlists: TRTC's tags, RFC 8216-valid EXTINF and TARGETDURATION, ENDLIST, discontinuities —
and what the reader makes of them: the writer's segments back, round trip."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.naming import TaskNaming
from chalicelib.playlist import PlaylistError, Segment, parse, render

SEGMENTS = [Segment("a_1.ts", 1000, 12074, 500, 640, 360),
            Segment("a_2.ts", 13074, 11901, 400, 640, 360),
            Segment("a_3.ts", 30000, 4200, 300, 1280, 720),
            Segment("a_4.ts", 60000, 3000, 200, 1280, 720, discontinuity=True)]


def test_playlist_tags_and_order() -> None:
    text = render(SEGMENTS, 1000, ended=True)
    assert text.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-ALLOW-CACHE:NO", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-TARGETDURATION:12", "#EXT-X-TRTC-START-REC-TIME:1000",
        "#EXT-X-TRTC-VIDEO-METADATA:WIDTH:640 HEIGHT:360",
        "#EXT-X-TRTC-FILE-ATTR:1000,500", "#EXTINF:12.074,", "a_1.ts",
        "#EXT-X-TRTC-FILE-ATTR:13074,400", "#EXTINF:11.901,", "a_2.ts",
        "#EXT-X-DISCONTINUITY", "#EXT-X-TRTC-VIDEO-METADATA:WIDTH:1280 HEIGHT:720",
        "#EXT-X-TRTC-FILE-ATTR:30000,300", "#EXTINF:4.200,", "a_3.ts",
        "#EXT-X-DISCONTINUITY", "#EXT-X-TRTC-FILE-ATTR:60000,200", "#EXTINF:3.000,", "a_4.ts",
        "#EXT-X-ENDLIST"]


def test_target_duration_covers_rounded_extinf_and_live_has_no_endlist() -> None:
    text = render([Segment("b.ts", 0, 12600, 1)], 0, ended=False)
    assert "#EXT-X-TARGETDURATION:13" in text and "#EXT-X-ENDLIST" not in text
    assert "#EXT-X-TRTC-VIDEO-METADATA" not in text  # audio has no video metadata


def test_round_trip() -> None:
    """The reader gives back what the writer was given; a new picture size reads as a
    discontinuity (the writer marks one there, as a player needs it)."""
    for ended in (True, False):
        listed = parse(render(SEGMENTS, 1000, ended))
        resized = dataclasses.replace(SEGMENTS[2], discontinuity=True)
        assert listed.segments == (SEGMENTS[0], SEGMENTS[1], resized, SEGMENTS[3])
        assert (listed.start_rec_ms, listed.ended) == (1000, ended)
        assert render(listed.segments, 1000, ended) == render(SEGMENTS, 1000, ended)
    audio = [Segment("x_1.ts", 5, 4000, 10), Segment("x_2.ts", 4005, 3999, 11, discontinuity=True)]
    assert parse(render(audio, 5, ended=True)).segments == tuple(audio)


def test_reads_trtc_playlists_without_file_attr() -> None:
    """TRTC's own sample: no FILE-ATTR, EXTINF without a comma, extra metadata fields; starts
    come from the UTC17 names, else follow the previous segment, else START-REC-TIME."""
    naming = TaskNaming("T", 1400000001, "8848", 1)
    first, second = naming.segment("u", "main", "video", 1_622_425_551_884), "odd-name.ts"
    text = "\n".join(["#EXTM3U", "#EXT-X-TARGETDURATION:70", "#EXT-X-TRTC-START-REC-TIME:1622425551000",
                      "#EXT-X-TRTC-VIDEO-METADATA:WIDTH:640 HEIGHT:480 Codec:27", "#EXTINF:12.074", first,
                      "#EXTINF:10", second])
    listed = parse(text)
    assert [(s.name, s.start_ms, s.duration_ms, s.width, s.height) for s in listed.segments] == [
        (first, 1_622_425_551_884, 12074, 640, 480), (second, 1_622_425_563_958, 10000, 640, 480)]
    assert not listed.ended
    assert parse("#EXTM3U\n#EXT-X-TRTC-START-REC-TIME:77\n#EXTINF:1.5,\nz.ts\n").segments[0].start_ms == 77


@pytest.mark.parametrize("text", ["", "not a playlist", "#EXTM3U\n", "#EXTM3U\nseg.ts\n",
                                  "#EXTM3U\n#EXT-X-TRTC-FILE-ATTR:x,1\n#EXTINF:1,\ns.ts\n",
                                  "#EXTM3U\n#EXTINF:2,\nno-start.ts\n"])
def test_unreadable_playlists_are_refused(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse(text)
