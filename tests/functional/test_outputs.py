"""MP4 / AAC outputs of ended tasks: the markers the recorder drops, the S3-triggered handler
that remuxes one part per invocation, split naming, events 310, HLS deletion, idempotency.
Recordings are made with PyAV in the test and judged with PyAV."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import av
import pytest

from chalicelib import aws, output_jobs, wiring
from chalicelib.config import Settings
from chalicelib.naming import TaskNaming
from chalicelib.tasks import StorageFile
from tests.support.hls_recording import Written, write_stream
from tests.support.mp4_boxes import box_types, index_first
from tests.support.output_tasks import BUCKET, T0, TASK_ID, run_output_jobs, s3_event, stored_task
from tests.support.queued import queued_events
from tests.support.task_records import params, task_record


def _upload(written: Written, directory: str) -> None:
    s3 = aws.client("s3")
    for path in [written.playlist, *written.segments]:
        s3.upload_file(str(path), BUCKET, directory + path.name)


def _single_user(tmp_path: Path, seconds: float = 20, audio_delay_ms: int = 2000, segment_s: float = 4,
                 user: str = "alice", media: str = "main", task_id: str = TASK_ID,
                 prefix: tuple[str, ...] = ()) -> tuple[list[StorageFile], Written, Written, str]:
    naming = TaskNaming(task_id, 1400000001, "8848", 1, prefix)
    video = write_stream(tmp_path / "v", naming.stream_stem(user, media, "video"), T0, seconds, segment_s,
                         audio=False)
    audio = write_stream(tmp_path / "a", naming.stream_stem(user, media, "audio"), T0 + audio_delay_ms,
                         seconds - audio_delay_ms / 1000, segment_s, video=False)
    for w in (video, audio):
        _upload(w, naming.directory)
    files = [StorageFile(video.playlist.name, user, "video", T0),
             StorageFile(audio.playlist.name, user, "audio", T0 + audio_delay_ms)]
    return files, video, audio, naming.directory


def _keys(prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _probe(tmp_path: Path, key: str) -> dict[str, Any]:
    path = tmp_path / Path(key).name
    aws.client("s3").download_file(BUCKET, key, str(path))
    with av.open(str(path)) as c:
        out: dict[str, Any] = {"format": c.format.name, "size": path.stat().st_size}
        for s in c.streams:
            out[s.type] = {"codec": s.codec_context.name, "start": float(s.start_time * s.time_base),
                           "duration": float(s.duration * s.time_base), "frames": s.frames}
        c.seek(0)
        out["video_payloads"] = [bytes(p) for p in c.demux(video=0) if p.size] if c.streams.video else []
    return out


def _slices(payload: bytes, length_prefixed: bool) -> list[bytes]:
    """Coded slices (NAL types 1 and 5) of an access unit, without their framing (start codes in TS,
    4-byte lengths in MP4); delimiters and parameter sets may legitimately move."""
    return [u for u in _nal_units(payload, length_prefixed) if u and u[0] & 0x1F in (1, 5)]


def _nal_units(payload: bytes, length_prefixed: bool) -> list[bytes]:
    if length_prefixed:
        units, i = [], 0
        while i < len(payload):
            n = int.from_bytes(payload[i:i + 4], "big")
            units.append(payload[i + 4:i + 4 + n])
            i += 4 + n
        return units
    parts = payload.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p.rstrip(b"\x00") for p in parts if p]


@pytest.fixture
def customer(aws_env: Settings, registry: Any) -> Settings:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return aws_env


def test_hls_mp4_one_file_per_user_aligned_and_not_reencoded(customer: Settings, tmp_path: Path) -> None:
    files, video, audio, directory = _single_user(tmp_path)
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 1}, files))
    stem = TaskNaming(TASK_ID, 1400000001, "8848", 1).stream_stem("alice", "main", "video").removesuffix("_video")
    mp4 = directory + stem + ".mp4"  # no <Index>: not split; no <Type>: audio and video together
    assert mp4 in _keys(directory)
    assert directory + video.playlist.name in _keys(directory)  # OutputFormat 1 keeps the HLS
    got = _probe(tmp_path, mp4)
    assert got["video"]["codec"] == "h264" and got["audio"]["codec"] == "aac"
    assert got["video"]["frames"] == len(video.packets) == 300
    assert abs(got["video"]["duration"] - 20) < 0.2
    # audio began 2 s after video in the room: it starts 2 s into the MP4 (the encoder's priming aside)
    assert abs(got["audio"]["start"] - got["video"]["start"] - 2.0) < 0.05
    sent = [u for p in video.packets for u in _slices(p, False)]
    stored = [u for p in got["video_payloads"] for u in _slices(p, True)]
    assert len(stored) == 300 and stored == sent  # the publisher's own slices: remuxed, not re-encoded
    (event,) = queued_events(310)
    payload = event["EventInfo"]["Payload"]
    assert event["EventInfo"]["TaskId"] == TASK_ID
    assert payload["Status"] == 0 and payload["FileList"] == [stem + ".mp4"]
    (message,) = payload["FileMessage"]
    assert message["UserId"] == "alice" and message["MediaId"] == "main" and message["TrackType"] == "audio_video"
    assert message["StartTimeStamp"] == T0 and abs(message["EndTimeStamp"] - (T0 + 20_000)) < 150


def test_split_by_duration_names_parts_and_keeps_continuity(customer: Settings, tmp_path: Path) -> None:
    files, video, _, directory = _single_user(tmp_path, seconds=150, segment_s=6)
    markers = run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 3, "MaxMediaFileDuration": 1}, files))
    assert len(markers) == 3  # one invocation per part
    stem = video.playlist.name.removesuffix("_video.m3u8")
    assert _keys(directory) == [directory + f"{stem}_{i}.mp4" for i in (1, 2, 3)]  # HLS gone (format 3)
    durations = [_probe(tmp_path, directory + f"{stem}_{i}.mp4")["video"]["duration"] for i in (1, 2, 3)]
    assert all(d <= 60 for d in durations) and abs(sum(durations) - 150) < 0.3
    messages = [e["EventInfo"]["Payload"]["FileMessage"][0] for e in queued_events(310)]
    assert [m["FileName"] for m in messages] == [f"{stem}_{i}.mp4" for i in (1, 2, 3)]
    for before, after in zip(messages, messages[1:], strict=False):
        assert abs(after["StartTimeStamp"] - before["EndTimeStamp"]) <= 70  # no gap, no overlap


def test_split_before_the_size_limit(customer: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files, video, _, directory = _single_user(tmp_path, seconds=40, segment_s=4)
    total = sum(p.stat().st_size for p in video.segments)
    limit = total // 3  # the 2 GB rule, at a size a test can reach
    monkeypatch.setenv("CLOUDREC_MP4_SPLIT_BYTES", str(limit))
    wiring.reset()
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 1}, files))
    parts = [k for k in _keys(directory) if k.endswith(".mp4")]
    assert len(parts) >= 3 and all(k.endswith(f"_{i + 1}.mp4") for i, k in enumerate(sorted(parts, key=len)))
    assert all(_probe(tmp_path, k)["size"] <= limit for k in parts)


def test_aac_output_is_audio_only_and_skips_silent_streams(customer: Settings, tmp_path: Path) -> None:
    files, _, audio, directory = _single_user(tmp_path)
    naming = TaskNaming(TASK_ID, 1400000001, "8848", 1)
    screen = write_stream(tmp_path / "s", naming.stream_stem("alice", "aux", "video"), T0, 10, 4, audio=False)
    _upload(screen, directory)
    files.append(StorageFile(screen.playlist.name, "alice", "video", T0))
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 4}, files))
    stem = audio.playlist.name.removesuffix("_audio.m3u8")
    assert [k for k in _keys(directory) if not k.endswith(".ts") and "aux" not in k] == [directory + stem + ".m4a"]
    got = _probe(tmp_path, directory + stem + ".m4a")
    assert "video" not in got and got["audio"]["codec"] == "aac" and abs(got["audio"]["duration"] - 18) < 0.2
    assert directory + audio.playlist.name not in _keys(directory)  # format 4: that user's HLS went away
    assert directory + screen.playlist.name in _keys(directory)  # the silent screen share had no AAC job: kept


@pytest.mark.parametrize(("output_format", "split", "extension"), [(3, False, "mp4"), (3, True, "mp4"),
                                                                   (4, False, "m4a")],
                         ids=["mp4", "mp4-split", "m4a"])
def test_outputs_have_their_index_first(customer: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        output_format: int, split: bool, extension: str) -> None:
    """moov before mdat in every file, each part of a split one too: a browser starts playing before
    the whole file has arrived. The files decode as before: every frame, the full duration."""
    files, video, _, directory = _single_user(tmp_path, seconds=3, audio_delay_ms=0, segment_s=1)
    if split:  # the 2 GB rule, at a size a test can reach
        monkeypatch.setenv("CLOUDREC_MP4_SPLIT_BYTES", str(sum(p.stat().st_size for p in video.segments) // 2))
        wiring.reset()
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": output_format}, files))
    made = [k for k in _keys(directory) if k.endswith("." + extension)]
    assert (len(made) >= 2) if split else (len(made) == 1)
    kinds = {"audio"} if extension == "m4a" else {"audio", "video"}
    frames = {kind: 0 for kind in kinds}
    seconds = 0.0
    for key in made:
        got = _probe(tmp_path, key)
        path = tmp_path / Path(key).name
        assert index_first(path), box_types(path)
        assert set(got) & {"audio", "video"} == kinds
        seconds += got["video" if "video" in kinds else "audio"]["duration"]
        with av.open(str(path)) as c:
            for packet in c.demux():
                frames[packet.stream.type] += len(packet.decode())
    assert abs(seconds - 3) < 0.1
    if "video" in kinds:
        assert frames["video"] == len(video.packets) == 45  # every frame
    assert frames["audio"] >= 3 * 48000 // 1024 - 2  # the encoder's priming aside


def test_mixed_recording_and_prefix(customer: Settings, tmp_path: Path) -> None:
    naming = TaskNaming(TASK_ID, 1400000001, "8848", 1, ("rec", "day1"))
    mixed = write_stream(tmp_path / "m", naming.mixed_playlist().removesuffix(".m3u8"), T0, 12, 4)
    _upload(mixed, naming.directory)
    task = stored_task({"RecordMode": 2, "OutputFormat": 1}, [StorageFile(mixed.playlist.name, "", "audio_video", T0)],
                       prefix=("rec", "day1"))
    run_output_jobs(task)
    key = f"rec/day1/{TASK_ID}/1400000001_8848.mp4"
    got = _probe(tmp_path, key)
    assert got["video"]["frames"] == 180 and got["audio"]["codec"] == "aac"
    (message,) = queued_events(310)[0]["EventInfo"]["Payload"]["FileMessage"]
    assert message["UserId"] == "" and message["MediaId"] == "mix" and message["TrackType"] == "audio_video"


def test_unreadable_recording_ends_with_status_2_and_keeps_the_hls(customer: Settings, tmp_path: Path) -> None:
    files, video, _, directory = _single_user(tmp_path)
    aws.client("s3").delete_object(Bucket=BUCKET, Key=directory + video.segments[2].name)
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 3}, files))
    (event,) = queued_events(310)
    assert event["EventInfo"]["Payload"] == {"Status": 2, "FileList": [], "FileMessage": []}
    assert directory + video.playlist.name in _keys(directory)  # nothing deleted
    assert not [k for k in _keys(directory) if k.endswith(".mp4")]


def test_a_redelivered_marker_does_not_redo_the_work(customer: Settings, tmp_path: Path) -> None:
    import app as chalice_app

    files, _, _, directory = _single_user(tmp_path, seconds=8)
    (marker,) = run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 1}, files))
    (mp4,) = [k for k in _keys(directory) if k.endswith(".mp4")]
    aws.client("s3").delete_object(Bucket=BUCKET, Key=mp4)
    chalice_app.make_outputs(s3_event(marker), None)  # S3 delivers at least once
    assert mp4 not in _keys(directory)


def test_no_outputs_for_plain_hls(customer: Settings, tmp_path: Path) -> None:
    files, _, _, _ = _single_user(tmp_path, seconds=8)
    assert run_output_jobs(stored_task({"RecordMode": 1}, files)) == []


def test_marker_jobs_group_users_and_ha_prefixes() -> None:
    task = task_record("T", sdkappid=1, room_id="r", room_id_type=0, params=params({"OutputFormat": 1}))
    naming = TaskNaming("T", 1, "r", 0)
    ha = TaskNaming("T", 1, "r", 0, ha_index=1)
    names = [naming.playlist("u1", "main", "audio"), naming.playlist("u1", "main", "video"),
             naming.playlist("u2", "main", "audio_video"), ha.playlist("u1", "main", "video")]
    task = dataclasses.replace(task, files={n: StorageFile(n, n.split("_s_")[1][:4], "x", 0) for n in names})
    jobs = output_jobs.jobs_for(task)
    assert [sorted(j.playlists) for j in jobs] == [["audio", "video"], ["audio_video"], ["video"]]
    assert {j.stem for j in jobs} == {naming.stream_stem("u1", "main", "x").removesuffix("_x"),
                                      naming.stream_stem("u2", "main", "x").removesuffix("_x"),
                                      ha.stream_stem("u1", "main", "x").removesuffix("_x")}


def test_a_damaged_segment_costs_only_itself(customer: Settings, tmp_path: Path) -> None:
    files, video, _, directory = _single_user(tmp_path, seconds=24, segment_s=4)
    aws.client("s3").put_object(Bucket=BUCKET, Key=directory + video.segments[2].name, Body=b"\x47\x1f\xff" * 4000)
    run_output_jobs(stored_task({"RecordMode": 1, "OutputFormat": 1}, files))
    (mp4,) = [k for k in _keys(directory) if k.endswith(".mp4")]
    frames = _probe(tmp_path, mp4)["video"]["frames"]
    assert 24 * 15 - 4 * 15 - 15 <= frames <= 24 * 15 - 4 * 15  # one 4-s segment lost, the rest kept
