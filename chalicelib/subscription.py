"""Which of the room's streams a task records (spec §2.2 SubscribeStreamUserIds, RecordParams).

A pure function of the publishers in the room (in join order) and the task's rules:
StreamType (audio+video / audio / video), MediaId (main / aux / both — it selects video;
a user's audio is always recorded with the main stream), allow- and blocklists for audio and
video, prefix rules ending in `.*$`, recording robots left out, at most 25 streams.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chalicelib.models import RecordParams, SubscribeStreamUserIds

log = logging.getLogger(__name__)

MAX_STREAMS = 25
PREFIX_RULE = ".*$"


@dataclass(frozen=True)
class PublishedStream:
    """One stream a publisher offers (from Janus: type, mid, codec, description)."""

    mid: str
    kind: str  # "audio" | "video"
    codec: str = ""
    description: str = ""
    disabled: bool = False
    simulcast: bool = False

    @property
    def media_id(self) -> str:
        """A video stream described `aux` is the aux (screen) stream; anything else is main."""
        return "aux" if self.kind == "video" and self.description.strip().lower() == "aux" else "main"


@dataclass(frozen=True)
class Publisher:
    user_id: str
    streams: tuple[PublishedStream, ...]
    robot: bool = False


@dataclass(frozen=True)
class Selected:
    """A stream to record."""

    user_id: str
    mid: str
    kind: str
    media_id: str


def matches(rules: Sequence[str], user_id: str, room_users: set[str]) -> bool:
    """Whether `user_id` is named by `rules`. A rule ending in `.*$` is a prefix rule, unless a
    user in the room has that literal UserId (then it names just that user, as TRTC says)."""
    for rule in rules:
        if rule == user_id:
            return True
        if rule.endswith(PREFIX_RULE) and rule not in room_users and user_id.startswith(rule[: -len(PREFIX_RULE)]):
            return True
    return False


def _allowed(user_id: str, allow: list[str] | None, block: list[str] | None, room_users: set[str]) -> bool:
    if allow:
        return matches(allow, user_id, room_users)
    if block:
        return not matches(block, user_id, room_users)
    return True


def select(publishers: Iterable[Publisher], params: RecordParams,
           rules: SubscribeStreamUserIds | None, limit: int = MAX_STREAMS) -> list[Selected]:
    """The streams to record, in join order, at most `limit`."""
    pubs = list(publishers)
    room_users = {p.user_id for p in pubs}
    rules = rules or SubscribeStreamUserIds()
    want_audio = params.StreamType in (0, 1)
    want_video = params.StreamType in (0, 2)
    video_media = {0: {"main", "aux"}, 1: {"main"}, 2: {"aux"}}[params.MediaId]
    chosen: list[Selected] = []
    for pub in pubs:
        if pub.robot and params.SubscribeAbility != 1:
            continue
        audio_ok = want_audio and _allowed(pub.user_id, rules.SubscribeAudioUserIds,
                                           rules.UnSubscribeAudioUserIds, room_users)
        video_ok = want_video and _allowed(pub.user_id, rules.SubscribeVideoUserIds,
                                           rules.UnSubscribeVideoUserIds, room_users)
        taken: set[tuple[str, str]] = set()  # one file per (kind, MediaId) and user
        for stream in pub.streams:
            key = (stream.kind, stream.media_id)
            if stream.disabled or key in taken:
                continue
            if (stream.kind == "audio" and audio_ok) or (
                    stream.kind == "video" and video_ok and stream.media_id in video_media):
                taken.add(key)
                chosen.append(Selected(pub.user_id, stream.mid, stream.kind, stream.media_id))
    if len(chosen) > limit:
        log.warning("%d streams match the subscription; recording the first %d", len(chosen), limit)
    return chosen[:limit]
