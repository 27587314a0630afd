"""A finished recording for the console's tests, made with the project's own writers: a task in
the task store with two participants' HLS (tests/support/hls_recording.py), an MP4 remuxed from
one of them (chalicelib/remux.py), their playlists recorded as Describe lists them, the events a
recorder sends (chalicelib/events.py) and a recording report in two parts (ha0, ha1) as
chalicelib/recording_report.py reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib import events
from chalicelib.events import Event, EventQueue, LeaveCode, UploadStatus
from chalicelib.mp4_parts import Part
from chalicelib.naming import AUDIO, AUDIO_VIDEO, MAIN
from chalicelib.playlist import parse
from chalicelib.recording_report import part_key
from chalicelib.remux import Source, remux_part
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore
from chalicelib.tasks import StorageFile, TaskRecord
from tests.support.hls_recording import write_stream
from tests.support.task_records import LIVE_FOR_GOOD, params, task_record

ALICE, BOB = "alice", "bob"
SECONDS = 6.0
EVENT_KEY = "console-event-key"
TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t", "mp4": "video/mp4"}


@dataclass(frozen=True)
class Recorded:
    task: TaskRecord
    started_ms: int
    ended_ms: int
    playlists: dict[str, str]  # UserId -> playlist name
    mp4: str
    segments: int  # TS files stored
    events: list[tuple[Event, int]]  # (event, EventMsTs) in the order the recorder sends them


BARS = np.array([[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0],
                 [0, 0, 192]], np.uint8)


def test_card(t: float, width: int = 320, height: int = 180) -> np.ndarray:
    """Colour bars with a white square crossing them once a second: a picture that shows it moves."""
    image = np.repeat(BARS, -(-width // len(BARS)), axis=0)[:width][None, :, :].repeat(height, axis=0).copy()
    x = int((t % 1.0) * (width - 40))
    image[70:110, x:x + 40] = 255
    return image


def _put(bucket: Bucket, key: str, path: Path) -> None:
    bucket.put(key, path.read_bytes(), TYPES[path.suffix.lstrip(".")])


def report_parts(task: TaskRecord, started_ms: int, ended_ms: int) -> dict[str, dict[str, Any]]:
    """A recording report's parts as two recorders write them (chalicelib/recording_report.py): the
    second takes over at mid-time; Alice's video has a gap, Bob's audio a hole at the hand-over."""
    handover = started_ms + 3000

    def stream(user: str, kind: str, joined: int, last_at: int, left: int | None, kbps: int,
               gaps: list[dict[str, int]]) -> dict[str, Any]:
        seconds = (last_at - joined) / 1000
        return {"UserId": user, "MediaId": MAIN, "Kind": kind, "Joined": joined, "Left": left, "DurationS": seconds,
                "FramesReceived": int(seconds * (15 if kind == "video" else 50)), "FramesLost": len(gaps),
                "KeyframeRequests": len(gaps), "BitrateKbps": kbps,
                "Bitrate": [[t, kbps + (t // 1000) % 3 * 10] for t in range(joined, last_at, 500)],
                "Resolutions": [{"At": joined, "Width": 320, "Height": 180}] if kind == "video" else [],
                "Gaps": gaps, "AvOffsetMs": 12.5 if kind == "video" else None, "LastAt": last_at,
                "Bytes": int(kbps * seconds * 125)}

    base = {"TaskId": task.task_id, "SdkAppId": task.sdkappid, "RoomId": task.room_id}
    return {
        part_key(task.task_id, 0): {**base, "Ha": 0, "StartedAt": started_ms, "EndedAt": handover, "TaskEnded": False,
                                    "Streams": [
            stream(ALICE, "video", started_ms, handover, None, 200, [{"At": started_ms + 1500, "DurationMs": 400}]),
            stream(ALICE, "audio", started_ms, handover, None, 64, []),
            stream(BOB, "audio", started_ms + 1000, handover - 1500, None, 48, [])]},
        part_key(task.task_id, 1): {**base, "Ha": 1, "StartedAt": handover, "EndedAt": ended_ms, "TaskEnded": True,
                                    "Streams": [
            stream(ALICE, "video", handover, ended_ms, ended_ms, 210, []),
            stream(ALICE, "audio", handover, ended_ms, ended_ms, 64, []),
            stream(BOB, "audio", handover, started_ms + 5000, started_ms + 5000, 48, [])]},
    }


def store_recording(store: TaskStore, storage: Bucket, internal: Bucket, task_id: str, workdir: Path,
                    started_ms: int, sdkappid: int = 1400000001) -> Recorded:
    """Write the recording to `storage` (the customer's bucket, `storage.name`) and `internal`,
    and its task (ended) to `store`."""
    ended_ms = started_ms + int(SECONDS * 1000)
    # live for good until it is finished below: a reaper running meanwhile leaves it alone
    task = task_record(task_id, sdkappid=sdkappid, room_id="8848", user_id="recorder_1",
                       params=params({"MaxIdleTime": 300}, storage.name, ("rec",)), created_ms=started_ms - 400,
                       api_expires_ms=ended_ms + 10**7, event_key=EVENT_KEY, ha_count=1,
                       lease_expires_ms=LIVE_FOR_GOOD)
    naming = task.naming()
    alice = write_stream(workdir / "alice", naming.stream_stem(ALICE, MAIN, AUDIO_VIDEO), started_ms, SECONDS, 2.0,
                         width=320, height=180, fps=15, picture=test_card)
    bob = write_stream(workdir / "bob", naming.stream_stem(BOB, MAIN, AUDIO), started_ms + 1000, SECONDS - 1, 2.0,
                       video=False)
    playlist = parse(alice.playlist.read_text())
    segments = {s.name: s for s in alice.segments}
    mp4_name = naming.stream_stem(ALICE, MAIN, AUDIO_VIDEO).removesuffix(f"_{AUDIO_VIDEO}") + ".mp4"
    made = remux_part([Source(playlist, frozenset({"audio", "video"}), lambda name: segments[name].read_bytes())],
                      Part(1, playlist.start_ms, playlist.end_ms + 1), workdir / mp4_name)
    assert made is not None
    store.admit(task, None, None, 100)
    for written, user, track in ((alice, ALICE, AUDIO_VIDEO), (bob, BOB, AUDIO)):
        for segment in written.segments:
            _put(storage, task.directory + segment.name, segment)
        _put(storage, task.directory + written.playlist.name, written.playlist)
        store.put_file(task_id, StorageFile(written.playlist.name, user, track,
                                            started_ms if user == ALICE else started_ms + 1000))
    _put(storage, task.directory + mp4_name, workdir / mp4_name)
    for key, part in report_parts(task, started_ms, ended_ms).items():
        internal.put(key, json.dumps(part).encode(), "application/json")
    store.finish(task_id, ended_ms, LeaveCode.API_STOP)
    sent = [(events.recorder_start(0), started_ms - 200), (events.upload_start(0), started_ms + 10),
            (events.file_info(alice.playlist.name), started_ms + 2100),
            # sent later than the next one, but earlier in time: the console orders by EventMsTs
            (events.file_info(bob.playlist.name), started_ms + 1900),
            (events.failover(1), started_ms + 3000), (events.recorder_stop(LeaveCode.API_STOP), ended_ms),
            (events.upload_stop(UploadStatus.ALL_STORED), ended_ms + 300)]
    stored = store.get(task_id)
    assert stored is not None
    return Recorded(stored, started_ms, ended_ms, {ALICE: alice.playlist.name, BOB: bob.playlist.name}, mp4_name,
                    len(alice.segments) + len(bob.segments), sent)


def send_events(queue: EventQueue, recorded: Recorded) -> None:
    """Queue the recording's events, as its recorder did."""
    for event, at_ms in recorded.events:
        queue.publish(event, recorded.task, at_ms)
