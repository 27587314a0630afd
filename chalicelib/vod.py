"""Tencent VOD as a recording's storage (StorageParams.CloudVod.TencentVod).

VOD's server-side upload has three steps: ApplyUpload grants a COS bucket, an object key
(MediaStoragePath) and a temporary credential; the files go to that bucket through COS's
S3-compatible endpoint; CommitUpload turns them into a media file (FileId, MediaUrl).
An HLS playlist's segments are stored beside MediaStoragePath under their relative names,
as VOD's upload SDKs do. In local mode the files go to CLOUDREC_STORAGE_ENDPOINT instead.
"""

from __future__ import annotations

import functools
import json
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vod.v20180717 import models
from tencentcloud.vod.v20180717.vod_client import VodClient

from chalicelib import retry
from chalicelib.config import Settings
from chalicelib.models import TencentVod
from chalicelib.retry import RetryPolicy

# Region is a required common parameter of ApplyUpload and CommitUpload; where the media
# is stored is chosen by StorageRegion, not by the API region.
API_REGION = "ap-guangzhou"
VOD_RETRY = RetryPolicy(delays_s=(1.0, 3.0), attempts=3)  # per step
MAX_MESSAGE = 300
MIN_SCRUBBED = 4  # shorter "secrets" would mangle every message they are scrubbed from
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "m3u8": "application/vnd.apple.mpegurl",
    "ts": "video/mp2t",
}
# Multipart above 64 MB: a recording is up to 2 GB and one failed part is cheaper to retry.
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 ** 2, multipart_chunksize=16 * 1024 ** 2,
                           max_concurrency=4)

T = TypeVar("T")


@dataclass(frozen=True)
class VodMedia:
    """A committed VOD media file."""

    file_id: str
    media_url: str


class VodError(Exception):
    """The VOD upload failed; str(exc) is a message safe to show users (no secrets)."""


@dataclass(frozen=True)
class _Grant:
    """What ApplyUpload granted: where to store the files and with which credential."""

    session_key: str
    bucket: str
    region: str
    media_key: str
    secret_id: str
    secret_key: str
    token: str | None


def expire_time(seconds: int, now: float) -> str | None:
    """ApplyUpload's ExpireTime (ISO 8601, UTC) for TRTC's "seconds to keep" (0 = forever)."""
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(int(now) + seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def media_type(media: Path) -> str:
    """VOD's MediaType of a file: its extension without the dot, lower-cased."""
    kind = media.suffix.lstrip(".").lower()
    if not kind:
        raise VodError(f"The media file {media.name} has no extension, so VOD cannot tell its type.")
    return kind


def apply_params(params: TencentVod, kind: str, media_name: str, now: float) -> dict[str, Any]:
    """The ApplyUpload parameters for one media file of a task."""
    out: dict[str, Any] = {"MediaType": kind, "MediaName": media_name, "ClassId": params.ClassId}
    expires = expire_time(params.ExpireTime, now)
    optional = {
        "Procedure": params.Procedure,
        "ExpireTime": expires,
        "StorageRegion": params.StorageRegion,
        "SubAppId": params.SubAppId or None,  # 0 means "no sub-application"
        "SourceContext": params.SourceContext,
        "SessionContext": params.SessionContext,
    }
    out.update({name: value for name, value in optional.items() if value})
    return out


def plan_objects(media_key: str, media: Path, extra: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(object key, local file) in upload order: the extras beside the media, the media last.

    `media_key` is MediaStoragePath (it starts with "/", an object key does not); an extra's
    name is relative to the media's directory and may not leave it.
    """
    key = media_key.lstrip("/")
    if not key:
        raise VodError("VOD returned an empty MediaStoragePath.")
    folder = posixpath.dirname(key)
    plan = []
    for name, path in extra:
        clean = posixpath.normpath(name)
        if name.startswith("/") or clean == "." or clean.startswith("../") or clean == "..":
            raise VodError(f"The segment name {name!r} is not a path relative to the playlist.")
        plan.append((posixpath.join(folder, clean) if folder else clean, path))
    plan.append((key, media))
    return plan


def _scrub(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _message(exc: BaseException) -> str:
    """What a failed step says: the service's code and message, or the local error."""
    if isinstance(exc, TencentCloudSDKException):
        message = exc.get_message()
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        return f"{exc.get_code() or 'ClientError'}: {message}"
    cause = retry.unwrapped(exc)
    if isinstance(cause, ClientError):
        return f"{retry.error_code(cause)}: {cause.response.get('Error', {}).get('Message') or ''}".strip()
    if isinstance(cause, OSError) and cause.strerror:
        return f"{type(cause).__name__}: {cause.strerror}"
    return f"{type(cause).__name__}: {cause}"


def _run(step: str, call: Callable[[], T], secrets: Sequence[str | None], policy: RetryPolicy) -> T:
    """Run one step, retrying transient failures; any failure becomes a VodError."""
    try:
        return retry.call(call, policy)
    except (TencentCloudSDKException, ClientError, BotoCoreError, S3UploadFailedError, OSError) as exc:
        raise VodError(_scrub(f"VOD {step} failed: {_message(exc)}", secrets)) from None


def _vod_client(secret_id: str, secret_key: str, settings: Settings) -> Any:
    url = urlsplit(settings.vod_endpoint)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise VodError(f"The VOD endpoint {settings.vod_endpoint!r} is not an http(s) URL.")
    http = HttpProfile(protocol=url.scheme, endpoint=url.netloc, reqTimeout=30)
    return VodClient(Credential(secret_id, secret_key), API_REGION, ClientProfile(httpProfile=http))


def _apply(client: Any, params: dict[str, Any]) -> _Grant:
    req = models.ApplyUploadRequest()
    req.from_json_string(json.dumps(params))
    resp = client.ApplyUpload(req)
    cert = resp.TempCertificate
    if cert is None or not resp.StorageBucket or not resp.MediaStoragePath:
        raise TencentCloudSDKException("FailedOperation", "ApplyUpload granted no storage.", resp.RequestId)
    return _Grant(session_key=resp.VodSessionKey, bucket=resp.StorageBucket, region=resp.StorageRegion,
                  media_key=resp.MediaStoragePath, secret_id=cert.SecretId, secret_key=cert.SecretKey,
                  token=cert.Token)


def _storage_client(grant: _Grant, settings: Settings) -> Any:
    """An S3 client for the granted bucket: COS (virtual-host) or the local emulation (path)."""
    endpoint = settings.storage_endpoint or f"https://cos.{grant.region}.myqcloud.com"
    return boto3.client(
        "s3",
        region_name=grant.region,
        endpoint_url=endpoint,
        aws_access_key_id=grant.secret_id,
        aws_secret_access_key=grant.secret_key,
        aws_session_token=grant.token or None,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60,
                      s3={"addressing_style": "path" if settings.storage_endpoint else "virtual"},
                      # COS rejects the aws-chunked trailing checksums boto3 sends by default
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"),
    )


def _store(s3: Any, bucket: str, key: str, path: Path) -> None:
    kind = posixpath.splitext(key)[1].lstrip(".").lower()
    extra = {"ContentType": CONTENT_TYPES[kind]} if kind in CONTENT_TYPES else None
    s3.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=_TRANSFER)


def _commit(client: Any, grant: _Grant, sub_app_id: int | None) -> VodMedia:
    req = models.CommitUploadRequest()
    req.VodSessionKey = grant.session_key
    if sub_app_id:
        req.SubAppId = sub_app_id
    resp = client.CommitUpload(req)
    return VodMedia(file_id=str(resp.FileId), media_url=str(resp.MediaUrl or ""))


def upload(params: TencentVod, secret_id: str, secret_key: str, settings: Settings,
           media: Path, media_name: str, extra: Sequence[tuple[str, Path]] = (),
           policy: RetryPolicy = VOD_RETRY) -> VodMedia:
    """Store one recording file in VOD and return its FileId and MediaUrl.

    `extra` are the files an HLS playlist refers to, as (name relative to the playlist,
    local path). Transient failures are retried; any failure raises VodError.
    """
    kind = media_type(media)
    secrets: list[str | None] = [secret_key, secret_id]
    try:
        client = _vod_client(secret_id, secret_key, settings)
    except TencentCloudSDKException as exc:  # e.g. an empty SecretId
        raise VodError(_scrub(f"VOD credentials are unusable: {exc.get_message()}", secrets)) from None
    request = apply_params(params, kind, media_name, time.time())
    grant = _run("ApplyUpload", lambda: _apply(client, request), secrets, policy)
    secrets += [grant.secret_key, grant.token, grant.secret_id]
    s3 = _storage_client(grant, settings)
    for key, path in plan_objects(grant.media_key, media, extra):
        _run(f"upload of {posixpath.basename(key)}", functools.partial(_store, s3, grant.bucket, key, path), secrets,
             policy)
    return _run("CommitUpload", lambda: _commit(client, grant, params.SubAppId), secrets, policy)
