"""The HLS → MP4 remux on small recordings made with PyAV: parts a kind is missing from, sources
that would both bring a kind, and the reader that hands the demuxer one segment after another."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from chalicelib import playlist
from chalicelib.mp4_parts import Part
from chalicelib.remux import Source, _Concatenated, remux_part
from tests.support.hls_recording import Written, write_stream

T0 = 1_760_000_000_000


def _source(written: Written, *kinds: str) -> Source:
    return Source(playlist.parse(written.playlist.read_text()), frozenset(kinds),
                  lambda name: (written.playlist.parent / name).read_bytes())


def _frames(path: Path) -> dict[str, int]:
    with av.open(str(path)) as c:
        return {s.type: s.frames for s in c.streams}


def test_a_kind_the_recording_lacks_is_left_out(tmp_path: Path) -> None:
    """The part ends before the look-ahead does: its demuxer is done before the output's streams
    are made from the packets' streams (which must still be open then)."""
    video = write_stream(tmp_path / "v", "v", T0, 4, 2, audio=False)
    result = remux_part([_source(video, "audio", "video")], Part(1, T0, T0 + 4001), tmp_path / "out.mp4")
    assert result is not None and result.kinds == {"video"} and result.packets == 60
    assert _frames(tmp_path / "out.mp4") == {"video": 60}


def test_a_part_before_one_source_begins_has_the_other_only(tmp_path: Path) -> None:
    video = write_stream(tmp_path / "v", "v", T0, 8, 2, audio=False)
    audio = write_stream(tmp_path / "a", "a", T0 + 5000, 3, 2, video=False)
    sources = [_source(video, "video"), _source(audio, "audio")]
    first = remux_part(sources, Part(1, T0, T0 + 4000), tmp_path / "1.mp4")
    second = remux_part(sources, Part(2, T0 + 4000, T0 + 8001), tmp_path / "2.mp4")
    assert first is not None and first.kinds == {"video"} and _frames(tmp_path / "1.mp4") == {"video": 60}
    assert second is not None and second.kinds == {"audio", "video"}
    assert second.start_ms == T0 + 4000 and abs(second.end_ms - (T0 + 8000)) <= 25


def test_a_kind_from_two_sources_is_refused(tmp_path: Path) -> None:
    both = write_stream(tmp_path / "m", "m", T0, 2, 2)
    audio = write_stream(tmp_path / "a", "a", T0, 2, 2, video=False)
    with pytest.raises(ValueError, match="a kind comes from more than one source"):
        remux_part([_source(both, "audio", "video"), _source(audio, "audio")], Part(1, T0, T0 + 2001),
                   tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_reads_stop_at_the_end_of_a_segment() -> None:
    """So after a damaged segment the reading starts again right after it."""
    reader = _Concatenated(iter([b"abc", b"", b"defgh"]))
    assert (reader.read(2), reader.chunks) == (b"ab", 1)
    assert (reader.read(5), reader.chunks) == (b"c", 1)
    assert (reader.read(16), reader.chunks) == (b"defgh", 3)
    assert reader.read(16) == b""
