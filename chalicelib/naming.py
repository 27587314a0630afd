"""Recording file names, exactly as TRTC names them (seed, spec §7).

  single-stream  <Prefix>/<TaskId>/[haN_]<SdkAppId>_<RoomId>__UserId_s_<UserId>__UserId_e_<MediaId>_<Type>.m3u8
                 …__UserId_e_<MediaId>_<Type>_<UTC17>.ts
  mixed-stream   <Prefix>/<TaskId>/[haN_]<SdkAppId>_<RoomId>.m3u8 and …_<RoomId>_<UTC17>.ts

<UserId> and a string <RoomId> are base64 with "/" → "-" and "=" → "."; <UTC17> is the UTC
wall-clock time of the file's first sample, yyyymmddHHMMSSmmm. With AvMerge=1 a user's audio
and video share one stream whose <Type> is "audio_video" (its TrackType in Describe).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

AUDIO, VIDEO, AUDIO_VIDEO = "audio", "video", "audio_video"
MAIN, AUX = "main", "aux"


def b64_name(value: str) -> str:
    """TRTC's file-name form of a UserId or string RoomId."""
    return base64.b64encode(value.encode("utf-8")).decode().replace("/", "-").replace("=", ".")


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

    @property
    def _stem(self) -> str:
        room = self.room_id if self.room_id_type == 1 else b64_name(self.room_id)
        ha = f"ha{self.ha_index}_" if self.ha_index else ""
        return f"{ha}{self.sdkappid}_{room}"

    def stream_stem(self, user_id: str, media_id: str, track_type: str) -> str:
        return f"{self._stem}__UserId_s_{b64_name(user_id)}__UserId_e_{media_id}_{track_type}"

    def playlist(self, user_id: str, media_id: str, track_type: str) -> str:
        """File name (no directory) of a single-stream playlist."""
        return self.stream_stem(user_id, media_id, track_type) + ".m3u8"

    def segment(self, user_id: str, media_id: str, track_type: str, first_sample_ms: int) -> str:
        return f"{self.stream_stem(user_id, media_id, track_type)}_{utc17(first_sample_ms)}.ts"

    def mixed_playlist(self) -> str:
        return self._stem + ".m3u8"

    def mixed_segment(self, first_sample_ms: int) -> str:
        return f"{self._stem}_{utc17(first_sample_ms)}.ts"
