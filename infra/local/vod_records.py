"""The local VOD stand-in's records and requests: upload sessions, media files as
DescribeMediaInfos shows them, and ApplyUpload's parameters as VOD checks them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import CloudrecError

NEVER_EXPIRES = "9999-12-31T23:59:59Z"  # VOD's BasicInfo.ExpireTime of a file kept forever
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MEDIA_TYPES = frozenset({"mp4", "m4a", "aac", "mp3", "m3u8", "flv", "ts", "mov", "mkv", "webm", "wav"})
AUDIO_TYPES = frozenset({"m4a", "aac", "mp3", "wav"})
_REGION_RE = re.compile(r"[a-z]{2,}-[a-z]+(-\d+)?")


def now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime(ISO_FORMAT)


@dataclass(frozen=True)
class UploadSession:
    """An ApplyUpload not yet committed."""

    secret_id: str
    media_path: str  # MediaStoragePath, starting with "/"
    storage_region: str
    params: Mapping[str, Any]  # the ApplyUpload parameters, validated


@dataclass(frozen=True)
class MediaRecord:
    """A committed media file with what its ApplyUpload asked for."""

    file_id: str
    name: str
    type: str
    procedure: str | None
    expire_time: str | None  # ISO 8601 as ApplyUpload sent it; None = kept forever
    class_id: int
    sub_app_id: int | None
    source_context: str | None
    session_context: str | None
    storage_region: str
    storage_path: str
    media_url: str
    create_time: str

    def info(self) -> dict[str, Any]:
        """The MediaInfo of DescribeMediaInfos (BasicInfo only)."""
        return {
            "FileId": self.file_id,
            "BasicInfo": {
                "Name": self.name,
                "Description": "",
                "CreateTime": self.create_time,
                "UpdateTime": self.create_time,
                "ExpireTime": self.expire_time or NEVER_EXPIRES,
                "ClassId": self.class_id,
                "ClassName": "",
                "ClassPath": "",
                "CoverUrl": "",
                "Type": self.type,
                "MediaUrl": self.media_url,
                "SourceInfo": {"SourceType": "Upload", "SourceContext": self.source_context or ""},
                "StorageRegion": self.storage_region,
                "StoragePath": self.storage_path,
                "TagSet": [],
                "Vid": "",
                "Category": "Audio" if self.type in AUDIO_TYPES else "Video",
                "Status": "Normal",
                "StorageClass": "STANDARD",
            },
        }


def _text(params: Mapping[str, Any], name: str, max_len: int, code: str | None = None) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CloudrecError(f"{name} must be a string.", "InvalidParameterValue")
    if len(value) > max_len:
        raise CloudrecError(f"{name} is longer than {max_len} characters.", code or "InvalidParameterValue")
    return value


def int_param(params: Mapping[str, Any], name: str, code: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CloudrecError(f"{name} must be a non-negative integer.", code)
    return value


def apply_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ApplyUpload's parameters (what this stand-in honours) and return them."""
    kind = params.get("MediaType")
    if not kind:
        raise CloudrecError("The MediaType parameter is missing.", "MissingParameter")
    if not isinstance(kind, str) or kind.lower() not in MEDIA_TYPES:
        raise CloudrecError(f"The MediaType {kind!r} is not supported.", "InvalidParameterValue.MediaType")
    expire = _text(params, "ExpireTime", 32, "InvalidParameterValue.ExpireTime")
    if expire is not None:
        try:
            datetime.strptime(expire, ISO_FORMAT)
        except ValueError:
            raise CloudrecError(f"ExpireTime {expire!r} is not an ISO 8601 date (YYYY-MM-DDThh:mm:ssZ).",
                                "InvalidParameterValue.ExpireTime") from None
    region = _text(params, "StorageRegion", 64, "InvalidParameterValue.StorageRegion")
    if region is not None and not _REGION_RE.fullmatch(region):
        raise CloudrecError(f"The StorageRegion {region!r} does not exist.", "InvalidParameterValue.StorageRegion")
    return {
        "MediaType": kind.lower(),
        "MediaName": _text(params, "MediaName", 256),
        "Procedure": _text(params, "Procedure", 256, "InvalidParameterValue.Procedure"),
        "ExpireTime": expire,
        "StorageRegion": region,
        "ClassId": int_param(params, "ClassId", "InvalidParameterValue.ClassId") or 0,
        "SubAppId": int_param(params, "SubAppId", "InvalidParameterValue.SubAppId"),
        "SourceContext": _text(params, "SourceContext", 250),
        "SessionContext": _text(params, "SessionContext", 1000, "InvalidParameterValue.SessionContextTooLong"),
    }
