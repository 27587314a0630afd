"""Recording file names, exactly as TRTC names them (seed, spec §7), written and read back.

  single-stream  <Prefix>/<TaskId>/[haN_]<SdkAppId>_<RoomId>__UserId_s_<UserId>__UserId_e_<MediaId>_<Type>.m3u8
                 …__UserId_e_<MediaId>_<Type>_<UTC17>.ts         …__UserId_e_<MediaId>[_<Index>].mp4
  mixed-stream   <Prefix>/<TaskId>/[haN_]<SdkAppId>_<RoomId>.m3u8, …_<RoomId>_<UTC17>.ts, …_<RoomId>[_<Index>].mp4

<UserId> and a string <RoomId> are base64 with "/" → "-" and "=" → "."; <UTC17> is the UTC
wall-clock time of the file's first sample, yyyymmddHHMMSSmmm. A UserId longer than
MAX_NAME_USER_BYTES (any participant chooses its own id, and S3 keys end at 1024 bytes) is
named by a deterministic short form (`file_user_id`); Describe and 307 carry the whole UserId
beside the file name. With AvMerge=1 a user's audio
and video share one stream whose <Type> is "audio_video" (its TrackType in Describe).

A stream's *stem* is its playlist name without ".m3u8"; its *output stem* names its MP4/M4A
files: the stem without the <Type> (single-stream; the same as the stem for a mix).
`TaskNaming` writes names; `parse` reads one back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

AUDIO, VIDEO, AUDIO_VIDEO = "audio", "video", "audio_video"
MAIN, AUX = "main", "aux"
PLAYLIST, SEGMENT = "m3u8", "ts"
MAX_NAME_USER_BYTES = 64  # TRTC's UserIds have at most 32


def b64_name(value: str) -> str:
    """TRTC's file-name form of a UserId or string RoomId."""
    return base64.b64encode(value.encode("utf-8")).decode().replace("/", "-").replace("=", ".")


def file_user_id(user_id: str) -> str:
    """The UserId as file names carry it: itself, or for one over MAX_NAME_USER_BYTES its first
    40 bytes, "~" and 16 hex digits of its SHA-256 — short, stable, and distinct per UserId."""
    raw = user_id.encode("utf-8")
    if len(raw) <= MAX_NAME_USER_BYTES:
        return user_id
    head = raw[:40].decode("utf-8", errors="ignore")
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:16]}"


def b64_value(name: str) -> str:
    """The UserId or string RoomId a file name holds: the inverse of b64_name (ValueError if it is none)."""
    try:
        return base64.b64decode(name.replace("-", "/").replace(".", "="), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{name!r} is not a base64 file-name form") from exc


def utc17(epoch_ms: int) -> str:
    """17-digit UTC time of a Unix time in milliseconds (year … millisecond)."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return moment.strftime("%Y%m%d%H%M%S") + f"{epoch_ms % 1000:03d}"


def utc17_ms(text: str) -> int:
    """Unix ms of a 17-digit UTC time (yyyymmddHHMMSSmmm): the inverse of utc17."""
    moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + int(text[14:17])


def file_safe(task_id: str) -> str:
    """A local file-name-safe form of a TaskId (work directories, logs): TaskIds may hold + - . but not /."""
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in task_id)


def playlist_name(stem: str) -> str:
    return f"{stem}.{PLAYLIST}"


def segment_name(stem: str, first_sample_ms: int) -> str:
    return f"{stem}_{utc17(first_sample_ms)}.{SEGMENT}"


def output_name(output_stem: str, extension: str, index: int, split: bool) -> str:
    """`<output stem>[_<Index>].<ext>`: the index only when the file was split (spec §7)."""
    return f"{output_stem}_{index}.{extension}" if split else f"{output_stem}.{extension}"


@dataclass(frozen=True)
class TaskNaming:
    """Where one task's files go: the key prefix and the room part of every name."""

    task_id: str
    sdkappid: int
    room_id: str
    room_id_type: int
    file_name_prefix: tuple[str, ...] = ()
    ha_index: int = 0

    @property
    def directory(self) -> str:
        """`<Prefix>/<TaskId>/` (no prefix when FileNamePrefix is unset)."""
        prefix = "".join(f"{part}/" for part in self.file_name_prefix)
        return f"{prefix}{self.task_id}/"

    def mixed_stem(self) -> str:
        room = self.room_id if self.room_id_type == 1 else b64_name(self.room_id)
        ha = f"ha{self.ha_index}_" if self.ha_index else ""
        return f"{ha}{self.sdkappid}_{room}"

    def stream_stem(self, user_id: str, media_id: str, track_type: str) -> str:
        user = b64_name(file_user_id(user_id))
        return f"{self.mixed_stem()}__UserId_s_{user}__UserId_e_{media_id}_{track_type}"

    def playlist(self, user_id: str, media_id: str, track_type: str) -> str:
        """File name (no directory) of a single-stream playlist."""
        return playlist_name(self.stream_stem(user_id, media_id, track_type))

    def segment(self, user_id: str, media_id: str, track_type: str, first_sample_ms: int) -> str:
        return segment_name(self.stream_stem(user_id, media_id, track_type), first_sample_ms)

    def mixed_playlist(self) -> str:
        return playlist_name(self.mixed_stem())

    def mixed_segment(self, first_sample_ms: int) -> str:
        return segment_name(self.mixed_stem(), first_sample_ms)


# base64 forms hold no "_", so "_" splits a name unambiguously; a playlist may carry TRTC's "_<n>"
_NAME = re.compile(
    r"(?:ha(?P<ha>[1-9]\d*)_)?(?P<app>\d+)_(?P<room>[^_]+?)"
    r"(?:__UserId_s_(?P<user>[^_]+)__UserId_e_(?P<media>main|aux)_(?P<type>audio_video|audio|video))?"
    r"(?:_(?P<utc>\d{17}))?(?:_(?P<n>\d{1,4}))?\.(?P<ext>m3u8|ts)")


@dataclass(frozen=True)
class RecordingName:
    """What a playlist or segment name says (`parse`)."""

    stem: str
    ha_index: int
    sdkappid: int
    room: str  # as written: a numeric RoomId, or the base64 form of a string one
    user: str | None  # as written (base64 form); None for a mixed recording
    media_id: str | None  # main | aux; None for a mixed recording
    track_type: str  # audio | video | audio_video (a mixed stream counts as audio_video)
    start_ms: int | None  # a segment's first sample (UTC17); None for a playlist
    extension: str

    @property
    def mixed(self) -> bool:
        return self.user is None

    @property
    def user_id(self) -> str:
        """The UserId (decoded); "" for a mixed recording."""
        return b64_value(self.user) if self.user is not None else ""

    @property
    def output_stem(self) -> str:
        return self.stem if self.mixed else self.stem.removesuffix(f"_{self.track_type}")


def parse(name: str) -> RecordingName | None:
    """Read a playlist or segment name back (no directory); None when it names no recording file."""
    m = _NAME.fullmatch(name)
    if m is None or (m["utc"] is None) != (m["ext"] == PLAYLIST) or (m["n"] and m["ext"] != PLAYLIST):
        return None
    if m["user"] is not None:
        try:
            b64_value(m["user"])
        except ValueError:
            return None
    stem = name[: m.start("utc") - 1] if m["utc"] else name[: (m.start("n") - 1) if m["n"] else m.start("ext") - 1]
    return RecordingName(stem=stem, ha_index=int(m["ha"] or 0), sdkappid=int(m["app"]), room=m["room"],
                         user=m["user"], media_id=m["media"], track_type=m["type"] or AUDIO_VIDEO,
                         start_ms=utc17_ms(m["utc"]) if m["utc"] else None, extension=m["ext"])
