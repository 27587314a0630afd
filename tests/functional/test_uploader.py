"""Uploads to the customer's storage (moto S3): in order, retried through an outage, reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chalicelib import aws
from chalicelib.config import Settings
from chalicelib.retry import RetryPolicy
from chalicelib.storage import Bucket, endpoint_for, storage_client
from chalicelib.tasks import StorageKeys, StorageTarget
from recorder_container.uploader import Upload, Uploader


def test_endpoints() -> None:
    cos = StorageTarget(0, "ap-shanghai", "b")
    s3 = StorageTarget(1, "us-west-2", "b")
    deployed = Settings.from_env({})
    assert endpoint_for(cos, deployed) == "https://cos.ap-shanghai.myqcloud.com"
    assert endpoint_for(s3, deployed) is None
    local = Settings.from_env({"CLOUDREC_STORAGE_ENDPOINT": "http://127.0.0.1:5000"})
    assert endpoint_for(cos, local) == endpoint_for(s3, local) == "http://127.0.0.1:5000"


def test_uploads_survive_an_outage_in_order(aws_env: Settings, tmp_path: Path) -> None:
    target, keys = StorageTarget(1, "us-east-1", "late-bucket"), StorageKeys("a", "s")
    errors: list[tuple[str, str]] = []
    firsts: list[bool] = []
    done: list[str] = []

    async def scenario() -> bool:
        up = Uploader(Bucket("late-bucket", lambda: storage_client(target, keys, aws_env)),
                      lambda c, m: errors.append((c, m)), lambda: firsts.append(True), RetryPolicy((0.05,)))
        up.start()
        seg = tmp_path / "seg.ts"
        seg.write_bytes(b"\x47" * 188)
        up.put(Upload("t/seg.ts", "video/mp2t", path=seg, on_done=lambda: done.append("seg")))
        up.put(Upload("t/p.m3u8", "application/vnd.apple.mpegurl", body=b"v1", on_done=lambda: done.append("v1")))
        up.put(Upload("t/p.m3u8", "application/vnd.apple.mpegurl", body=b"v2", on_done=lambda: done.append("pl")))
        assert not await up.drain(0.5)  # the bucket does not exist yet: nothing can be stored
        aws.client("s3").create_bucket(Bucket="late-bucket")
        ok = await up.drain(10)
        await up.stop()
        assert not seg.exists()  # a stored segment leaves the work directory
        return ok

    assert asyncio.run(scenario())
    assert errors and errors[0][0] == "NoSuchBucket" and len(errors) == 1  # one 308 per outage
    assert firsts == [True] and done == ["seg", "v1", "pl"]  # v2 stored v1's news too (the 304 it carries)
    body = aws.client("s3").get_object(Bucket="late-bucket", Key="t/p.m3u8")["Body"].read()
    assert body == b"v2"  # only the newest playlist was waiting
