"""A task's recordings as the console plays them: which files it has (the customer's storage,
or the internal bucket for VOD tasks, and the backup of files that storage refused), presigned
GET URLs for them, and HLS playlists rewritten so that every segment is a presigned URL — a
`<video>` element and hls.js fetch segments themselves and cannot send the operator's key.

Presigning is local (no request): URLs last `PRESIGN_S`, and a playlist is rewritten each time
the player reloads it. HLS in the browser needs the bucket to allow cross-origin GETs (CORS);
MP4 in a `<video>` element does not.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import naming
from chalicelib.config import Settings
from chalicelib.storage import COS, Bucket, backup_prefix, endpoint_for, storage_client
from chalicelib.tasks import TaskRecord

PRESIGN_S = 3600
KINDS = {"m3u8": "hls", "mp4": "mp4", "m4a": "m4a"}
MAX_LISTED = 5000  # objects of one task's directory the console lists at most (segments included)
STORAGE, BACKUP = "storage", "backup"
_USER = re.compile(r"__UserId_s_(?P<user>[^_]+)__UserId_e_(?P<media>main|aux)")
_HA = re.compile(r"ha(?P<ha>[1-9]\d*)_")
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')


class NotARecordingError(LookupError):
    """The file is not one of the task's recordings."""


class Place:
    """A bucket the console reads, and presigns GET URLs for with Signature Version 4: S3 takes
    no other for buckets made since 2020, and botocore presigns V2 at AWS's endpoints unless told
    (the storage clients leave it to botocore). The signing client is built on first use."""

    def __init__(self, bucket: Bucket, make_signer: Callable[[], Any]) -> None:
        self.bucket = bucket
        self._make_signer = make_signer

    @functools.cached_property
    def signer(self) -> Any:
        return self._make_signer()

    def url(self, key: str, expires_s: int = PRESIGN_S) -> str:
        """A presigned GET URL of `key` (made here: no request)."""
        url: str = self.signer.generate_presigned_url("get_object", Params={"Bucket": self.bucket.name, "Key": key},
                                                      ExpiresIn=expires_s)
        return url


def _signing_config(path_style: bool, virtual: bool) -> Config:
    return Config(signature_version="s3v4", s3={"addressing_style": "path" if path_style else (
        "virtual" if virtual else "auto")})


def task_place(task: TaskRecord, settings: Settings, internal: Bucket) -> Place:
    """Where the task's files are (chalicelib/storage.py `task_bucket`): the customer's bucket
    with the task's keys, or for a VOD task the internal bucket."""
    target, keys = task.params.storage, task.storage_keys
    if target is None or keys is None:
        return internal_place(settings, internal)
    return Place(Bucket(target.bucket, lambda: storage_client(target, keys, settings)), lambda: boto3.client(
        "s3", region_name=target.region, endpoint_url=endpoint_for(target, settings),
        aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
        config=_signing_config(bool(settings.storage_endpoint), target.vendor == COS)))


def internal_place(settings: Settings, internal: Bucket) -> Place:
    """The internal bucket, URLs signed with the function's own credentials."""
    return Place(internal, lambda: boto3.client("s3", region_name=settings.aws_region,
                                                endpoint_url=settings.aws_endpoint,
                                                config=_signing_config(bool(settings.aws_endpoint), False)))


@dataclass(frozen=True)
class Located:
    """A recording file: its place and key."""

    place: Place
    key: str


def describe(name: str, task: TaskRecord) -> dict[str, Any]:
    """What a file name says: its kind, user (decoded), media, track and failover index."""
    extension = name.rpartition(".")[2]
    out: dict[str, Any] = {"Name": name, "Kind": KINDS.get(extension, extension), "UserId": "", "MediaId": "",
                           "TrackType": "", "Ha": 0, "BeginMs": None}
    if (ha := _HA.match(name)) is not None:
        out["Ha"] = int(ha["ha"])
    if (user := _USER.search(name)) is not None:
        try:
            out["UserId"] = naming.b64_value(user["user"])
        except ValueError:
            out["UserId"] = user["user"]
        out["MediaId"] = user["media"]
    parsed = naming.parse(name) if extension == naming.PLAYLIST else None
    if parsed is not None:
        out["TrackType"] = parsed.track_type
    stored = task.files.get(name)
    if stored is not None:
        out.update(UserId=stored.UserId, TrackType=stored.TrackType, BeginMs=stored.BeginTimeStamp)
    return out


def _names(bucket: Bucket, directory: str) -> list[tuple[str, int]]:
    """(name, bytes) of the playable files directly in `directory`."""
    found = []
    for page in bucket.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=directory, PaginationConfig={"MaxItems": MAX_LISTED}):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(directory):]
            if "/" not in name and name.rpartition(".")[2] in KINDS:
                found.append((name, int(obj.get("Size", 0))))
    return found


def files(task: TaskRecord, storage: Place, internal: Place) -> list[dict[str, Any]]:
    """The task's playlists and MP4/M4A files where they are now, in time order. Where the
    customer's keys may not list their bucket, the playlists the task recorded (Describe's)."""
    listed: list[dict[str, Any]] = []
    where: list[tuple[str, int | None, str]]
    try:
        where = [(name, size, STORAGE) for name, size in _names(storage.bucket, task.directory)]
    except (BotoCoreError, ClientError):
        where = [(name, None, STORAGE) for name in task.files]
    try:
        where += [(name, size, BACKUP) for name, size in
                  _names(internal.bucket, backup_prefix(task.task_id) + task.directory)]
    except (BotoCoreError, ClientError):
        pass
    for name, size, place in where:
        entry = describe(name, task)
        entry.update(Where=place, Size=size)
        if entry["Kind"] != "hls":
            located = locate(task, name, place, storage, internal)
            entry["Url"] = located.place.url(located.key)
        listed.append(entry)
    return sorted(listed, key=lambda f: (f["BeginMs"] or 0, f["Ha"], f["Name"], f["Where"]))


def locate(task: TaskRecord, name: str, where: str, storage: Place, internal: Place) -> Located:
    """The object of one of the task's files; NotARecordingError for a name that is not a file
    of its directory (no path, no other kind)."""
    if not name or "/" in name or name.startswith(".") or name.rpartition(".")[2] not in KINDS:
        raise NotARecordingError(name)
    if where == STORAGE:
        return Located(storage, task.directory + name)
    if where == BACKUP:
        return Located(internal, backup_prefix(task.task_id) + task.directory + name)
    raise NotARecordingError(where)


def rewrite_playlist(text: str, sign: Callable[[str], str]) -> str:
    """The playlist with each relative URI (segment lines, `URI="…"` attributes) replaced by
    `sign(name)`: URIs that leave the playlist's directory, or are absolute, are kept as they are."""
    def signed(uri: str) -> str:
        if not uri or "://" in uri or uri.startswith("/") or posixpath.normpath(uri).startswith(".."):
            return uri
        return sign(posixpath.normpath(uri))

    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(signed(stripped))
        elif stripped.startswith("#") and 'URI="' in stripped:
            out.append(_URI_ATTRIBUTE.sub(lambda m: f'URI="{signed(m.group(1))}"', stripped))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def playlist(located: Located) -> str:
    """A stored playlist with presigned segment URLs (segments are beside it)."""
    directory = located.key.rpartition("/")[0]
    text = located.place.bucket.get(located.key).decode("utf-8", errors="replace")
    base = f"{directory}/" if directory else ""
    return rewrite_playlist(text, lambda name: located.place.url(base + name))
