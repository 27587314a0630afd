"""The VOD commit path (chalicelib.vod) against the local VOD stand-in and a moto S3 server:
the official SDK signs and sends, boto3 stores the files, the stand-in checks and records."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from moto.server import ThreadedMotoServer
from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vod.v20180717 import models
from tencentcloud.vod.v20180717.vod_client import VodClient

from chalicelib import vod
from chalicelib.config import Settings
from chalicelib.models import TencentVod
from chalicelib.retry import RetryPolicy
from chalicelib.vod import VodError, upload
from infra.local.vod_records import NEVER_EXPIRES
from infra.local.vod_server import VodServer

SECRET_ID = "AKIDVODTEST0001"
SECRET_KEY = "vod-test-secret-key-0001"
BUCKET = "vod-media-1250000000"
MB = 1024 ** 2

NO_WAIT = RetryPolicy((0.0,), attempts=3)  # VOD's own: 3 attempts, 1 s and 3 s apart


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                 aws_secret_access_key="local").create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture
def s3(moto_url: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


@pytest.fixture
def server(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[VodServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    stand_in = VodServer(0, s3, BUCKET, {SECRET_ID: SECRET_KEY})
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def settings(server: VodServer, moto_url: str) -> Settings:
    return Settings.from_env({"CLOUDREC_VOD_ENDPOINT": server.url, "CLOUDREC_STORAGE_ENDPOINT": moto_url})


def _key(media_url: str, moto_url: str) -> str:
    prefix = f"{moto_url}/{BUCKET}/"
    assert media_url.startswith(prefix)
    return media_url[len(prefix):]


def _body(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_expire_time_is_iso_8601_from_now_and_zero_is_forever() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert vod.expire_time(86400, now) == "2026-03-02T12:00:00Z"
    assert vod.expire_time(0, now) is None


def test_segments_go_beside_the_playlist_and_may_not_leave_it(tmp_path: Path) -> None:
    media = tmp_path / "index.m3u8"
    plan = vod.plan_objects("/abc/rec.m3u8", media, [("s0.ts", tmp_path / "a"), ("sub/s1.ts", tmp_path / "b")])
    assert [key for key, _ in plan] == ["abc/s0.ts", "abc/sub/s1.ts", "abc/rec.m3u8"]
    for bad in ("../s.ts", "/abs.ts", "a/../../s.ts"):
        with pytest.raises(VodError, match="not a path relative"):
            vod.plan_objects("/abc/rec.m3u8", media, [(bad, tmp_path / "a")])


def test_mp4_upload_lands_in_the_bucket(server: VodServer, settings: Settings, s3: Any, moto_url: str,
                                        tmp_path: Path) -> None:
    media = tmp_path / "room1_user1.mp4"
    media.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    result = upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, media, "room1_user1.mp4")
    assert result.file_id.isdigit()
    key = _key(result.media_url, moto_url)
    assert key.endswith(".mp4")
    assert _body(s3, key) == media.read_bytes()
    record = server.media[result.file_id]
    assert (record.name, record.type, record.expire_time) == ("room1_user1.mp4", "mp4", None)
    assert server.actions == ["ApplyUpload", "CommitUpload"]


def test_a_large_file_goes_up_in_parts(settings: Settings, s3: Any, moto_url: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vod, "_TRANSFER", TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB))
    media = tmp_path / "big.mp4"
    media.write_bytes(bytes(range(256)) * (11 * MB // 256))
    result = upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, media, "big.mp4")
    key = _key(result.media_url, moto_url)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"').endswith("-3")  # three parts
    assert _body(s3, key) == media.read_bytes()


def test_hls_upload_lands_playlist_and_segments(server: VodServer, settings: Settings, s3: Any, moto_url: str,
                                                tmp_path: Path) -> None:
    segs = [("seg_0.ts", tmp_path / "seg_0.ts"), ("seg_1.ts", tmp_path / "seg_1.ts")]
    for i, (_, path) in enumerate(segs):
        path.write_bytes(bytes([0x47]) * 188 * (i + 1))
    playlist = tmp_path / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_0.ts\n#EXTINF:4.0,\nseg_1.ts\n"
                        "#EXT-X-ENDLIST\n")
    result = upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, playlist, "room1.m3u8", segs)
    key = _key(result.media_url, moto_url)
    folder = key.rsplit("/", 1)[0]
    assert _body(s3, key) == playlist.read_bytes()
    for name, path in segs:
        assert _body(s3, f"{folder}/{name}") == path.read_bytes()
    assert server.media[result.file_id].type == "m3u8"


def test_hls_commit_fails_when_a_segment_is_missing(settings: Settings, tmp_path: Path) -> None:
    playlist = tmp_path / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:4.0,\nseg_0.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(VodError, match=r"CommitUpload failed: FailedOperation: .*seg_0\.ts"):
        upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, playlist, "room1.m3u8")


def test_tencent_vod_fields_reach_vod(server: VodServer, settings: Settings, tmp_path: Path) -> None:
    params = TencentVod.model_validate({
        "Procedure": "LongVideoPreset", "ClassId": 7, "ExpireTime": 86400, "SubAppId": 1500000001,
        "SourceContext": "source-ctx", "SessionContext": "session-ctx", "StorageRegion": "ap-chongqing"})
    media = tmp_path / "audio.m4a"
    media.write_bytes(b"m4a-bytes")
    before = int(time.time())
    result = upload(params, SECRET_ID, SECRET_KEY, settings, media, "audio.m4a")
    record = server.media[result.file_id]
    assert (record.procedure, record.class_id, record.sub_app_id) == ("LongVideoPreset", 7, 1500000001)
    assert (record.source_context, record.session_context) == ("source-ctx", "session-ctx")
    assert (record.storage_region, record.type) == ("ap-chongqing", "m4a")
    assert record.expire_time is not None
    expires = datetime.strptime(record.expire_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert before + 86400 <= expires <= int(time.time()) + 86400

    # and DescribeMediaInfos, through the official SDK, reports them in VOD's shape
    host = settings.vod_endpoint.removeprefix("http://")
    client = VodClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou",
                       ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=host)))
    req = models.DescribeMediaInfosRequest()
    req.FileIds, req.SubAppId = [result.file_id, "404"], 1500000001
    resp = client.DescribeMediaInfos(req)
    assert resp.NotExistFileIdSet == ["404"]
    basic = resp.MediaInfoSet[0].BasicInfo
    assert (basic.Name, basic.Type, basic.ClassId, basic.StorageRegion) == ("audio.m4a", "m4a", 7, "ap-chongqing")
    assert (basic.ExpireTime, basic.SourceInfo.SourceContext, basic.MediaUrl) == (
        record.expire_time, "source-ctx", result.media_url)


def test_a_file_kept_forever_never_expires(server: VodServer, settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "a.mp4"
    media.write_bytes(b"x")
    result = upload(TencentVod(ExpireTime=0), SECRET_ID, SECRET_KEY, settings, media, "a.mp4")
    assert server.media[result.file_id].info()["BasicInfo"]["ExpireTime"] == NEVER_EXPIRES


def test_wrong_secret_key_is_an_auth_failure_without_secrets(server: VodServer, settings: Settings,
                                                             tmp_path: Path) -> None:
    media = tmp_path / "a.mp4"
    media.write_bytes(b"x")
    wrong = "not-the-right-secret-key"
    with pytest.raises(VodError) as info:
        upload(TencentVod(), SECRET_ID, wrong, settings, media, "a.mp4")
    message = str(info.value)
    assert "AuthFailure.SignatureFailure" in message and "ApplyUpload" in message
    assert wrong not in message and SECRET_KEY not in message
    assert server.actions == [] and server.media == {}


def test_commit_of_a_missing_object_fails(server: VodServer, settings: Settings, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vod, "_store", lambda *args: None)  # the file never reaches storage
    media = tmp_path / "a.mp4"
    media.write_bytes(b"x")
    with pytest.raises(VodError, match=r"VOD CommitUpload failed: FailedOperation: .*was not stored"):
        upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, media, "a.mp4")
    assert server.media == {}


def test_transient_errors_are_retried_and_others_are_not(server: VodServer, settings: Settings,
                                                         tmp_path: Path) -> None:
    media = tmp_path / "a.mp4"
    media.write_bytes(b"x")
    server.faults[:] = ["InternalError", "RequestLimitExceeded"]
    assert upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, media, "a.mp4", policy=NO_WAIT).file_id
    assert server.actions == ["ApplyUpload"] * 3 + ["CommitUpload"]

    server.actions.clear()
    server.faults[:] = ["InvalidParameterValue.ClassId"]
    with pytest.raises(VodError, match="InvalidParameterValue.ClassId"):
        upload(TencentVod(), SECRET_ID, SECRET_KEY, settings, media, "a.mp4")
    assert server.actions == ["ApplyUpload"]


def test_an_unreachable_vod_is_a_vod_error(settings: Settings, tmp_path: Path) -> None:
    media = tmp_path / "a.mp4"
    media.write_bytes(b"x")
    down = Settings.from_env({"CLOUDREC_VOD_ENDPOINT": f"http://127.0.0.1:{_free_port()}"})
    with pytest.raises(VodError, match="ApplyUpload failed: ClientNetworkError"):
        upload(TencentVod(), SECRET_ID, SECRET_KEY, down, media, "a.mp4", policy=NO_WAIT)
