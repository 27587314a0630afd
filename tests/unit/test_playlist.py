"""Playlists: TRTC's tags, RFC 8216-valid EXTINF and TARGETDURATION, ENDLIST, discontinuities."""

from __future__ import annotations

from recorder_container.playlist import PlaylistSegment, render


def test_playlist_tags_and_order() -> None:
    segs = [PlaylistSegment("a_1.ts", 12.074, 1000, 500, 640, 360),
            PlaylistSegment("a_2.ts", 11.901, 13074, 400, 640, 360),
            PlaylistSegment("a_3.ts", 4.2, 30000, 300, 1280, 720),
            PlaylistSegment("a_4.ts", 3.0, 60000, 200, 1280, 720, discontinuity=True)]
    text = render(segs, 1000, ended=True)
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
    text = render([PlaylistSegment("b.ts", 12.6, 0, 1)], 0, ended=False)
    assert "#EXT-X-TARGETDURATION:13" in text and "#EXT-X-ENDLIST" not in text
    assert "#EXT-X-TRTC-VIDEO-METADATA" not in text  # audio has no video metadata
