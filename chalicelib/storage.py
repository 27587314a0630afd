"""Buckets: the customer's storage (CloudStorage) — Tencent COS through its S3-compatible
endpoint (Vendor 0) or AWS S3 (Vendor 1), with the keys the task carries — and cloudrec's
internal bucket, behind one small adapter. In local mode every vendor is reached at
CLOUDREC_STORAGE_ENDPOINT (the AWS emulation by default)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings
from chalicelib.tasks import StorageKeys, StorageTarget, TaskRecord

COS, AWS = 0, 1
DELETE_BATCH = 1000  # S3's DeleteObjects limit
BACKUP_PREFIX = "backup/"  # in the internal bucket: backup/<TaskId>/<key in the customer's bucket>


def backup_prefix(task_id: str) -> str:
    """Where a task's files wait while the customer's storage refuses them (chalicelib/backup.py)."""
    return f"{BACKUP_PREFIX}{task_id}/"


def endpoint_for(target: StorageTarget, settings: Settings) -> str | None:
    if settings.storage_endpoint:
        return settings.storage_endpoint
    if target.vendor == COS:
        return f"https://cos.{target.region}.myqcloud.com"
    return None


def storage_client(target: StorageTarget, keys: StorageKeys, settings: Settings) -> Any:
    """An S3 client for the task's bucket (its own credentials; retries left to the caller)."""
    style = "path" if settings.storage_endpoint else ("virtual" if target.vendor == COS else "auto")
    return boto3.client(
        "s3",
        region_name=target.region,
        endpoint_url=endpoint_for(target, settings),
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        # COS rejects the default checksums of boto3 >= 1.36 (trailer-signed streaming uploads)
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10,
                      request_checksum_calculation="when_required", response_checksum_validation="when_required",
                      s3={"addressing_style": style}),
    )


class Bucket:
    """One bucket and the calls cloudrec makes on it. The client is built on first use (in the
    thread that first uses it: building boto3 clients is not thread-safe, using them is)."""

    def __init__(self, name: str, connect: Callable[[], Any]) -> None:
        self.name = name
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The S3 client (built by `connect` on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type)

    def upload(self, key: str, path: Path) -> None:
        """A local file of any size (multipart where it is large)."""
        self.client.upload_file(str(path), self.name, key)

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body

    def fetch(self, key: str) -> tuple[bytes, str]:
        """An object's body and content type."""
        got = self.client.get_object(Bucket=self.name, Key=key)
        return got["Body"].read(), str(got.get("ContentType") or "binary/octet-stream")

    def listing(self, prefix: str, limit: int | None = None) -> list[tuple[str, float]]:
        """(key, when stored as Unix s) of the objects under `prefix`, at most `limit` of them."""
        found: list[tuple[str, float]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            found += [(o["Key"], o["LastModified"].timestamp()) for o in page.get("Contents", [])]
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    def prefixes(self, prefix: str) -> list[str]:
        """The names one level below `prefix` ("a/b/" under "a/" is "b")."""
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix,
                                                                          Delimiter="/"):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            self.client.delete_objects(Bucket=self.name, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + DELETE_BATCH]], "Quiet": True})


def task_bucket(task: TaskRecord, settings: Settings, internal: Bucket) -> Bucket:
    """Where a task's HLS is stored: the customer's bucket, or the internal one for VOD tasks
    (their files go to VOD afterwards)."""
    target, keys = task.params.storage, task.storage_keys
    if target is None or keys is None:
        return internal
    return Bucket(target.bucket, lambda: storage_client(target, keys, settings))
