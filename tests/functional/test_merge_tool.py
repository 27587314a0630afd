"""tools/merge.py on folders of single-stream recordings made with PyAV in the test, judged
with PyAV: segments, durations, A/V sync of a flash and a beep, gaps, aux streams, ha_
resumes, sizes and fps, and the errors a user meets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from chalicelib.naming import TaskNaming, b64_name, utc17
from tests.support.hls_recording import write_stream
from tests.support.mp4_boxes import box_types, index_first
from tools import merge

T0 = 1_760_000_000_000
FLASH_S = 10.0  # alice's flash and beep, seconds after T0


def _naming(ha: int = 0) -> TaskNaming:
    return TaskNaming("T", 1400000001, "8848", 1, ha_index=ha)


def _write(folder: Path, user: str, kind: str, start_ms: int, seconds: float, media: str = "main", ha: int = 0,
           **kw: Any) -> None:
    """One stretch of a stream; a later stretch of the same stream joins its playlist (a user who
    left and came back), after a discontinuity, as the recorder writes it."""
    stem = _naming(ha).stream_stem(user, media, kind)
    written = write_stream(folder / "work" / f"{stem}{start_ms}", stem, start_ms, seconds, 4,
                           video=kind == "video", audio=kind == "audio", **kw)
    for path in written.segments:
        path.rename(folder / path.name)
    playlist = folder / written.playlist.name
    text = written.playlist.read_text()
    if playlist.exists():
        body = text[text.index("#EXT-X-TRTC-", text.index("#EXT-X-TRTC-START-REC-TIME") + 1):]
        text = playlist.read_text().replace("#EXT-X-ENDLIST\n", "#EXT-X-DISCONTINUITY\n") + body
    playlist.write_text(text)


def _flash(offset_s: float) -> Any:
    def picture(t: float) -> np.ndarray:
        level = 235 if abs(t + offset_s - FLASH_S) < 1e-6 else 40
        return np.full((90, 160, 3), level, np.uint8)
    return picture


def _beep(offset_s: float) -> Any:
    def sound(t: np.ndarray) -> np.ndarray:
        on = (t + offset_s >= FLASH_S) & (t + offset_s < FLASH_S + 0.1)
        return np.where(on, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    return sound


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice: video from T0, audio 3 s late, a flash+beep at 10 s, a second segment after a 20 s gap;
    bob: sound only with an 8 s gap and a corrupt segment; carol: picture only, one TS missing;
    dave: main video then a screen share; erin: recorded, failed over, resumed as ha1_."""
    f = tmp_path_factory.mktemp("recordings")
    _write(f, "alice", "video", T0, 20, picture=_flash(0))
    _write(f, "alice", "audio", T0 + 3000, 17, sound=_beep(3))
    _write(f, "alice", "video", T0 + 40_000, 8)
    _write(f, "alice", "audio", T0 + 40_000, 8)
    _write(f, "bob", "audio", T0, 10)
    _write(f, "bob", "audio", T0 + 18_000, 6, ha=1)
    _write(f, "carol", "video", T0, 12)
    _write(f, "dave", "video", T0, 6)
    _write(f, "dave", "video", T0 + 6000, 6, media="aux", width=320, height=180)
    _write(f, "erin", "video", T0, 8)
    _write(f, "erin", "video", T0 + 9000, 7, ha=1)
    bob = sorted(f.glob(f"*{b64_name('bob')}*_audio_*.ts"))
    bob[1].write_bytes(b"\x47garbage" * 500)  # corrupt, in the middle of bob's first recording
    carol = sorted(f.glob(f"*{b64_name('carol')}*.ts"))
    carol[-1].unlink()  # listed but missing
    return f


def _run(folder: Path, out: Path, *args: str) -> tuple[int, dict[str, Path]]:
    """Run the tool on a copy of the folder; the outputs it wrote, by name."""
    out.mkdir()
    for p in folder.iterdir():
        if p.is_file():
            (out / p.name).symlink_to(p)
    code = merge.main(["-f", str(out), *args])
    return code, {p.name: p for p in out.iterdir() if p.suffix in (".mp4", ".m4a")}


def _info(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as c:
        out: dict[str, Any] = {}
        for s in c.streams:
            out[s.type] = {"codec": s.codec_context.name, "start": float((s.start_time or 0) * s.time_base),
                           "duration": float(s.duration * s.time_base), "frames": s.frames}
            if s.type == "video":
                out[s.type]["size"] = (s.codec_context.width, s.codec_context.height)
        return out


def _flash_and_beep(path: Path, until_s: float = 20) -> tuple[float, float]:
    """Times (s) of the brightest frame and of the beep's onset, in alice's first 20 s."""
    with av.open(str(path)) as c:
        lumas = [(float(f.pts * f.time_base), f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate  # read while the file is open
        chunks, first = [], None
        for f in c.decode(audio=0):
            if first is None:
                first = float(f.pts * f.time_base)
            chunks.append(f.to_ndarray()[0])
    samples = np.concatenate(chunks)
    onset = int(np.argmax(np.abs(samples) > 0.1))
    return max((x for x in lumas if x[0] < until_s), key=lambda x: x[1])[0], (first or 0.0) + onset / rate


def _name(user: str, start_ms: int, av_: bool = True) -> str:
    return f"{b64_name(user)}_{utc17(start_ms)}" + ("_av.mp4" if av_ else ".m4a")


def test_segments_sync_gaps_and_resumes(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, outputs = _run(folder, tmp_path / "m0")
    assert code == 0
    assert sorted(outputs) == sorted([
        _name("alice", T0), _name("alice", T0 + 40_000 - 21), _name("bob", T0 - 21, av_=False),
        _name("carol", T0), _name("dave", T0), _name("erin", T0)])
    alice = _info(outputs[_name("alice", T0)])
    assert alice["video"]["codec"] == "h264" and alice["video"]["frames"] == 300  # remuxed: every frame
    assert abs(alice["video"]["duration"] - 20) < 0.2 and abs(alice["audio"]["duration"] - 20) < 0.2
    flash, beep = _flash_and_beep(outputs[_name("alice", T0)])
    assert abs(flash - FLASH_S) < 0.07 and abs(beep - flash) <= 0.040  # A/V in sync despite the late audio
    assert abs(_info(outputs[_name("alice", T0 + 40_000 - 21)])["video"]["duration"] - 8) < 0.2
    bob = _info(outputs[_name("bob", T0 - 21, av_=False)])
    assert "video" not in bob and abs(bob["audio"]["duration"] - 24) < 0.3  # an 8 s gap (< 15 s): one file
    assert "audio" not in _info(outputs[_name("carol", T0)])  # picture only
    assert abs(_info(outputs[_name("erin", T0)])["video"]["duration"] - 16) < 0.3  # ha1_ folded in
    assert abs(_info(outputs[_name("dave", T0)])["video"]["duration"] - 6) < 0.2  # -a 0: main only
    err = capsys.readouterr().err
    assert "is damaged" in err or "cannot be read" in err  # bob's corrupt TS: a warning, not a crash
    assert "missing; skipped" in err


def test_merge_mode_keeps_or_drops_the_gaps(folder: Path, tmp_path: Path) -> None:
    _, kept = _run(folder, tmp_path / "m1", "-m", "1")
    alice = _info(kept[_name("alice", T0)])
    assert abs(alice["video"]["duration"] - 48) < 0.3 and abs(alice["audio"]["duration"] - 48) < 0.3
    _, saved = _run(folder, tmp_path / "m1s", "-m", "1", "-s")
    alice = _info(saved[_name("alice", T0)])
    assert abs(alice["audio"]["duration"] - 28) < 0.3 and len(saved) == len(kept) == 5


def test_aux_modes(folder: Path, tmp_path: Path) -> None:
    _, auto = _run(folder, tmp_path / "a1", "-a", "1")
    dave = _info(auto[_name("dave", T0)])
    assert abs(dave["video"]["duration"] - 12) < 0.3 and dave["video"]["size"] == (320, 180)  # re-encoded
    _, aux = _run(folder, tmp_path / "a2", "-a", "2")
    assert _name("dave", T0 + 6000) in aux and _name("dave", T0) not in aux


def test_size_fps_and_black_gaps(folder: Path, tmp_path: Path) -> None:
    _, outputs = _run(folder, tmp_path / "r", "-r", "320", "180", "-p", "10", "-b", "-m", "1")
    path = outputs[_name("alice", T0)]
    info = _info(path)
    assert info["video"]["size"] == (320, 180)
    assert abs(info["video"]["frames"] / info["video"]["duration"] - 10) < 0.5
    flash, beep = _flash_and_beep(path)
    assert abs(beep - flash) <= 0.040 + 0.05  # one 10 fps tick of quantisation at most
    with av.open(str(path)) as c:  # -b: inside the 20 s gap the picture is black, not the last frame
        lumas = {round(float(f.pts * f.time_base)): f.to_ndarray(format="gray").mean() for f in c.decode(video=0)}
    assert lumas[30] < 20 and lumas[5] > 30


def test_outputs_have_their_index_first(tmp_path: Path) -> None:
    """moov before mdat in the MP4 and the M4A the tool writes: they start playing before the whole
    file has arrived. And they decode: every frame, the full duration."""
    source = tmp_path / "source"
    _write(source, "alice", "video", T0, 2)
    _write(source, "alice", "audio", T0, 2)
    _write(source, "bob", "audio", T0, 2)
    code, outputs = _run(source, tmp_path / "out")
    (mp4,) = [p for name, p in outputs.items() if name.startswith(b64_name("alice")) and name.endswith("_av.mp4")]
    (m4a,) = [p for name, p in outputs.items() if name.startswith(b64_name("bob")) and name.endswith(".m4a")]
    assert code == 0 and len(outputs) == 2
    for path in (mp4, m4a):
        assert index_first(path), box_types(path)
    alice, bob = _info(mp4), _info(m4a)
    assert alice["video"]["frames"] == 30 and abs(alice["video"]["duration"] - 2) < 0.1
    assert abs(alice["audio"]["duration"] - 2) < 0.1
    assert "video" not in bob and abs(bob["audio"]["duration"] - 2) < 0.1
    with av.open(str(mp4)) as c:
        assert sum(len(p.decode()) for p in c.demux(video=0)) == 30


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert merge.main(["-f", str(tmp_path / "empty")]) == 2
    assert "is empty" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    assert merge.main(["-f", str(tmp_path / "other")]) == 2
    assert "no single-stream playlists" in capsys.readouterr().err
    assert merge.main(["-f", str(tmp_path / "nowhere")]) == 2
