"""Uploads to the customer's storage (moto S3): in order, through the backup storage while it
fails, reported; one refused object holds up nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib import aws, wiring
from chalicelib.backup import Backup
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


class Storage(Bucket):
    """The customer's bucket (moto), which the test can take off the network or have refuse some
    keys (as a bucket policy would; moto does not enforce those), and which notes what it
    stored, in order."""

    def __init__(self, name: str, connect: Callable[[], Any]) -> None:
        super().__init__(name, connect)
        self.down, self.tries, self.order, self.refused = False, 0, [], set()  # type: ignore[var-annotated]
        self.hang_s = 0.0  # how long a put waits for an answer (a storage that is frozen, or crawls)

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.tries += 1
        time.sleep(self.hang_s)
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://storage.example")
        if key in self.refused:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
        super().put(key, body, content_type)
        self.order.append(key)


def _storage(settings: Settings, name: str = "bucket") -> Storage:
    target, keys = StorageTarget(1, "us-east-1", name), StorageKeys("a", "s")
    return Storage(name, lambda: storage_client(target, keys, settings))


def _segment(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"\x47" * 188)
    return path


def _backed_up(task_id: str) -> list[str]:
    return sorted(k.split("/", 2)[2] for k, _ in wiring.internal_bucket().listing(f"backup/{task_id}/"))


STEM = "rec/T1/1400000001_3560__UserId_s_YWxpY2U.__UserId_e_main_video"
PLAYLIST = "application/vnd.apple.mpegurl"


def test_while_the_storage_is_down_files_go_to_the_backup_then_on_in_order(aws_env: Settings,
                                                                            tmp_path: Path) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    storage = _storage(aws_env)
    storage.down = True
    errors: list[tuple[str, str]] = []
    done: list[str] = []
    segments = [f"{STEM}_2026113011000{i}000.ts" for i in range(3)]

    async def scenario() -> None:
        up = Uploader(storage, lambda c, m: errors.append((c, m)), lambda: None, RetryPolicy((0.05,)),
                      Backup(wiring.internal_bucket(), "T1"))
        up.start()
        for n, key in enumerate(segments):
            up.put(Upload(key, "video/mp2t", path=_segment(tmp_path, f"{n}.ts"), on_done=lambda k=key: done.append(k)))
            up.put(Upload(f"{STEM}.m3u8", PLAYLIST, body=f"v{n}".encode(), on_done=lambda n=n: done.append(f"v{n}")))
        assert await up.drain(5)  # stored: in the backup
        assert storage.tries <= 3 and up.in_backup == 4  # a storage that does not answer is not tried per file
        assert _backed_up("T1") == sorted([*segments, f"{STEM}.m3u8"])
        assert not list(tmp_path.iterdir())  # nothing waits on this disk
        storage.down = False
        await until(lambda: up.in_backup == 0, "the backup to move on")
        await up.stop()

    asyncio.run(scenario())
    assert errors == [("EndpointConnectionError", "the storage did not answer (EndpointConnectionError)")]
    assert storage.order == [*segments, f"{STEM}.m3u8"]  # the playlist after its segments
    body = aws.client("s3").get_object(Bucket="bucket", Key=f"{STEM}.m3u8")["Body"].read()
    assert body == b"v2" and _backed_up("T1") == []
    assert sorted(done) == sorted([*segments, "v0", "v1", "v2"])


def test_one_refused_key_holds_up_nothing_else(aws_env: Settings, tmp_path: Path) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    storage = _storage(aws_env)
    errors: list[tuple[str, str]] = []
    bad = "rec/T2/private/seg.ts"
    storage.refused.add(bad)

    async def scenario() -> None:
        up = Uploader(storage, lambda c, m: errors.append((c, m)), lambda: None, RetryPolicy((0.05,)),
                      Backup(wiring.internal_bucket(), "T2"))
        up.start()
        up.put(Upload(bad, "video/mp2t", path=_segment(tmp_path, "bad.ts")))
        for n in range(3):
            up.put(Upload(f"rec/T2/good{n}.ts", "video/mp2t", path=_segment(tmp_path, f"{n}.ts")))
            await asyncio.sleep(0.2)  # passes over the backup run in between
        assert await up.drain(5)
        assert up.in_backup == 1
        await up.stop()

    asyncio.run(scenario())
    assert [k for k in storage.order] == [f"rec/T2/good{n}.ts" for n in range(3)]
    assert errors == [("AccessDenied", "Access Denied")]
    assert _backed_up("T2") == [bad]


def test_a_missing_bucket_gets_everything_once_it_exists(aws_env: Settings, tmp_path: Path) -> None:
    errors: list[tuple[str, str]] = []
    firsts: list[bool] = []
    done: list[str] = []

    async def scenario() -> None:
        up = Uploader(_storage(aws_env, "late-bucket"), lambda c, m: errors.append((c, m)),
                      lambda: firsts.append(True), RetryPolicy((0.05,)), Backup(wiring.internal_bucket(), "T3"))
        up.start()
        up.put(Upload("t/seg.ts", "video/mp2t", path=_segment(tmp_path, "seg.ts"), on_done=lambda: done.append("seg")))
        up.put(Upload("t/p.m3u8", PLAYLIST, body=b"v1", on_done=lambda: done.append("v1")))
        up.put(Upload("t/p.m3u8", PLAYLIST, body=b"v2", on_done=lambda: done.append("pl")))
        assert await up.drain(5) and up.in_backup == 2
        aws.client("s3").create_bucket(Bucket="late-bucket")
        await until(lambda: up.in_backup == 0, "the backup to move on")
        await up.stop()

    asyncio.run(scenario())
    assert errors == [("NoSuchBucket", "The specified bucket does not exist")]  # one 308 per kind of trouble
    assert firsts == [True] and done == ["seg", "v1", "pl"]  # v2 stored v1's news too (the 304 it carries)
    assert aws.client("s3").get_object(Bucket="late-bucket", Key="t/p.m3u8")["Body"].read() == b"v2"


def test_a_storage_that_hangs_holds_the_queue_up_only_for_the_patience(aws_env: Settings, tmp_path: Path) -> None:
    """A put that gets no answer (a frozen storage answers nothing, for the read timeout or
    longer) does not hold the queue: after `patience_s` the file goes to the backup, and so do
    the next ones until the storage answers again."""
    aws.client("s3").create_bucket(Bucket="bucket")
    storage = _storage(aws_env)
    storage.hang_s = 2.0
    segments = [f"{STEM}_2026113011000{i}000.ts" for i in range(4)]

    async def scenario() -> float:
        up = Uploader(storage, lambda c, m: None, lambda: None, RetryPolicy((0.5,)),
                      Backup(wiring.internal_bucket(), "T4"), patience_s=0.2)
        up.start()
        started = time.monotonic()
        for n, key in enumerate(segments):
            up.put(Upload(key, "video/mp2t", path=_segment(tmp_path, f"{n}.ts")))
        assert await up.drain(5)
        stored = time.monotonic() - started
        storage.hang_s = 0.0
        await until(lambda: up.in_backup == 0, "the backup to move on")
        await up.stop()
        return stored

    assert asyncio.run(scenario()) < 1.5  # all four stored somewhere well before the first put gave up
    assert set(storage.order) == set(segments) and _backed_up("T4") == []  # the late put may land too


def test_a_long_backlog_in_the_backup_delays_new_files_by_one_pass_at_most(aws_env: Settings,
                                                                            tmp_path: Path) -> None:
    aws.client("s3").create_bucket(Bucket="bucket")
    storage = _storage(aws_env)
    storage.down = True
    backlog = [f"rec/T5/old{n:03d}.ts" for n in range(60)]

    async def scenario() -> tuple[int, int]:
        up = Uploader(storage, lambda c, m: None, lambda: None, RetryPolicy((0.05,)),
                      Backup(wiring.internal_bucket(), "T5"))
        up.start()
        for n, key in enumerate(backlog):
            up.put(Upload(key, "video/mp2t", path=_segment(tmp_path, f"{n}.ts")))
        assert await up.drain(10) and up.in_backup == len(backlog)
        storage.down, storage.hang_s = False, 0.01
        await until(lambda: storage.order, "the first moves")
        up.put(Upload("rec/T5/new.ts", "video/mp2t", path=_segment(tmp_path, "new.ts")))
        await until(lambda: "rec/T5/new.ts" in storage.order, "the new file")
        waiting = up.in_backup
        await until(lambda: up.in_backup == 0, "the backlog", timeout=20)
        await up.stop()
        return waiting, storage.order.index("rec/T5/new.ts")

    waiting, position = asyncio.run(scenario())
    assert waiting > 0 and position <= 2 * 20, (waiting, position)  # not behind the whole backlog


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
