"""VOD tasks after the recording: HLS from the internal bucket, MP4 and playlists committed to
VOD through ApplyUpload → upload → CommitUpload (official SDK, local VOD stand-in), events
311 per file and 312 at the end, the internal HLS removed only when every commit succeeded."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from chalicelib import aws, wiring
from chalicelib.apps import App, RoomBackend
from chalicelib.models import TencentVod
from chalicelib.naming import TaskNaming
from chalicelib.schema import create_resources
from chalicelib.tasks import StorageFile
from infra.local.vod_server import VodServer
from tests.support.hls_recording import write_stream
from tests.support.output_tasks import T0, run_output_jobs, stored_task

SECRET_ID, SECRET_KEY = "AKIDVODAPP", "vod-app-key"
VOD_BUCKET = "vod-media"
# moto servers in one process share their state (and the FIFO queue's deduplication): one TaskId per test
TASK_IDS = {"ok": "Vod+task/1.", "failed": "Vod+task/2."}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A moto server holding everything, the app registered, and the VOD stand-in."""
    for name in list(os.environ):
        if name.startswith("CLOUDREC_") or name.lower() in ("http_proxy", "https_proxy"):
            monkeypatch.delenv(name)
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    url = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                        "AWS_DEFAULT_REGION": "us-east-1", "CLOUDREC_AWS_ENDPOINT": url}.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    create_resources(aws.settings(), aws.client("dynamodb"), aws.client("sqs"), aws.client("s3"))
    aws.client("s3").create_bucket(Bucket=VOD_BUCKET)
    wiring.app_registry().put_app(App(sdkappid=1400000001, usersig_key="k",
                                      room=RoomBackend(janus_url="http://127.0.0.1:9/janus")), SECRET_ID, SECRET_KEY)
    server = VodServer(0, aws.client("s3"), VOD_BUCKET, {SECRET_ID: SECRET_KEY})
    server.start()
    monkeypatch.setenv("CLOUDREC_VOD_ENDPOINT", server.url)
    wiring.reset()
    yield {"vod": server, "url": url}
    server.stop()
    moto.stop()
    wiring.reset()


def _vod_task(tmp_path: Path, tencent_vod: dict[str, Any], task_id: str) -> tuple[Any, list[str]]:
    naming = TaskNaming(task_id, 1400000001, "8848", 1)
    internal = aws.settings().internal_bucket
    keys, files = [], []
    for kind, start in (("video", T0), ("audio", T0 + 500)):
        written = write_stream(tmp_path / kind, naming.stream_stem("bob", "main", kind), start, 10, 4,
                               video=kind == "video", audio=kind == "audio")
        for path in [written.playlist, *written.segments]:
            aws.client("s3").upload_file(str(path), internal, naming.directory + path.name)
            keys.append(naming.directory + path.name)
        files.append(StorageFile(written.playlist.name, "bob", kind, start))
    return stored_task({}, files, task_id=task_id, vod=TencentVod.model_validate(tencent_vod)), keys


def _internal_keys(prefix: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=aws.settings().internal_bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_hls_and_mp4_committed_to_vod_with_the_tasks_vod_fields(stack: dict[str, Any], tmp_path: Path) -> None:
    fields = {"MediaType": 3, "Procedure": "LongVideoPreset", "ClassId": 7, "SubAppId": 1500001,
              "SourceContext": "src-ctx", "SessionContext": "sess-ctx", "ExpireTime": 86400,
              "UserDefineRecordId": "lesson_42"}
    task, hls_keys = _vod_task(tmp_path, fields, TASK_IDS["ok"])
    run_output_jobs(task)
    events = _all_events()
    commits = [e["EventInfo"]["Payload"] for e in events if e["EventType"] == 311]
    assert len(commits) == 3 and all(c["Status"] == 0 for c in commits)  # two playlists and one MP4
    names = sorted(c["TencentVod"]["CacheFile"] for c in commits)
    stem = TaskNaming(TASK_IDS["ok"], 1400000001, "8848", 1).stream_stem("bob", "main", "x").removesuffix("_x")
    assert names == sorted([stem + "_audio.m3u8", stem + "_video.m3u8", stem + ".mp4"])
    mp4 = next(c["TencentVod"] for c in commits if c["TencentVod"]["CacheFile"].endswith(".mp4"))
    assert mp4["UserId"] == "bob" and mp4["MediaId"] == "main" and mp4["TrackType"] == "audio_video"
    assert mp4["FileId"] in stack["vod"].media and mp4["VideoUrl"].endswith(".mp4")
    record = stack["vod"].media[mp4["FileId"]]
    assert (record.procedure, record.class_id, record.sub_app_id, record.source_context, record.session_context) == (
        "LongVideoPreset", 7, 1500001, "src-ctx", "sess-ctx")
    assert record.expire_time and record.expire_time != "9999-12-31T23:59:59Z"
    assert record.name == f"lesson_42__UserDefine_u_{stem}.mp4"  # the media's name in VOD
    assert [e["EventInfo"]["Payload"] for e in events if e["EventType"] == 312] == [{"Status": 0}]
    assert [e["EventType"] for e in events][-1] == 312  # the end comes last
    assert not [k for k in hls_keys if k in _internal_keys(TASK_IDS["ok"])]  # committed, so the internal copy is gone


def test_a_failed_vod_commit_is_reported_and_keeps_the_hls(stack: dict[str, Any], tmp_path: Path) -> None:
    stack["vod"]._credentials.clear()  # VOD no longer knows the app's key
    task, hls_keys = _vod_task(tmp_path, {"MediaType": 0}, TASK_IDS["failed"])
    run_output_jobs(task)
    events = _all_events()
    (commit,) = [e["EventInfo"]["Payload"] for e in events if e["EventType"] == 311]
    assert commit["Status"] == 2 and "AuthFailure" in commit["Errmsg"] and SECRET_KEY not in commit["Errmsg"]
    assert [e["EventInfo"]["Payload"] for e in events if e["EventType"] == 312] == [{"Status": 1}]
    assert sorted(hls_keys) == sorted(_internal_keys(TASK_IDS["failed"]))


def _all_events() -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    url = wiring.event_queue().url
    found: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not msgs:
            return found
        found += [json.loads(m["Body"])["Event"] for m in msgs]
