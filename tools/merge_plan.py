"""What the merge tool will write, decided from the file names and playlists alone (spec §8,
seed "단일 스트림 파일 병합 스크립트"): users, their clips on one wall clock, segments split
at gaps of 15 s or more, and one output per segment (-m 0) or per user (-m 1, gaps kept or,
with -s, removed). No media is touched here; merge_media writes what this plans.

Better than TRTC_Merge.py where it was wrong: a segment ends at the latest end seen so far
(not the previous clip's), UTC17 names are read as UTC, START-REC-TIME and FILE-ATTR are used
when present, ha1_…ha3_ recordings fold into the user's timeline, AvMerge (`audio_video`)
streams count as both, and each user gets their own output size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib import naming
from chalicelib.naming import AUDIO, AUDIO_VIDEO, MAIN, VIDEO
from chalicelib.playlist import PlaylistError, parse

GAP_MS = 15_000
MAIN_ONLY, AUTO, AUX_ONLY = 0, 1, 2


class MergeError(Exception):
    """The folder cannot be merged at all (nothing to do): the message says why."""


@dataclass(frozen=True)
class Clip:
    """One TS file of one kind (an AvMerge TS gives an audio and a video clip)."""

    path: Path
    kind: str  # audio | video
    media: str  # main | aux
    start_ms: int
    end_ms: int
    width: int = 0
    height: int = 0
    # the file opens with an AAC encoder's priming: its first real sample, which its name's time
    # is, comes 1024 samples after its first packet (the first file of an audio playlist, and
    # each after a discontinuity: a new source starts a new encoder)
    primed: bool = False


@dataclass
class User:
    uid: str  # as in the file names (TRTC's base64 form)
    audio: list[Clip] = field(default_factory=list)
    main: list[Clip] = field(default_factory=list)
    aux: list[Clip] = field(default_factory=list)


@dataclass(frozen=True)
class Span:
    """A stretch of wall time [start, end) that lands at `out_ms` in the output."""

    start_ms: int
    end_ms: int
    out_ms: int


@dataclass(frozen=True)
class Output:
    name: str  # <uid>_<UTC17>_av.mp4 or <uid>_<UTC17>.m4a
    uid: str
    audio: tuple[Clip, ...]
    video: tuple[Clip, ...]
    spans: tuple[Span, ...]  # wall time → output time, in order

    @property
    def duration_ms(self) -> int:
        last = self.spans[-1]
        return last.out_ms + last.end_ms - last.start_ms

    def out_ms(self, wall_ms: float) -> float | None:
        """Output time of a wall-clock time; None when it falls in a removed gap (-s)."""
        for span in self.spans:
            if wall_ms < span.end_ms:
                return span.out_ms + wall_ms - span.start_ms if wall_ms >= span.start_ms else None
        last = self.spans[-1]
        return last.out_ms + wall_ms - last.start_ms


def scan(folder: Path, warn: Callable[[str], None]) -> list[User]:
    """Every user with recorded clips in the folder; unusable files are reported and skipped."""
    if not folder.is_dir():
        raise MergeError(f"{folder} is not a folder")
    if not any(folder.iterdir()):
        raise MergeError(f"{folder} is empty")
    named = [(p, naming.parse(p.name)) for p in sorted(folder.glob("*.m3u8"))]
    playlists = [(path, name) for path, name in named if name is not None and not name.mixed]
    if not playlists:
        raise MergeError(f"no single-stream playlists (…__UserId_s_<UserId>__UserId_e_….m3u8) in {folder}")
    users: dict[str, User] = {}
    for path, name in playlists:
        assert name.user is not None and name.media_id is not None
        try:
            playlist = parse(path.read_text(encoding="utf-8", errors="replace"))
        except PlaylistError as exc:
            warn(f"{path.name}: {exc}; skipped")
            continue
        user = users.setdefault(name.user, User(name.user))
        for i, seg in enumerate(playlist.segments):
            ts = folder / seg.name
            if not ts.is_file():
                warn(f"{seg.name} is listed in {path.name} but missing; skipped")
                continue
            if ts.stat().st_size == 0:
                warn(f"{seg.name} is empty; skipped")
                continue
            kinds = (AUDIO, VIDEO) if name.track_type == AUDIO_VIDEO else (name.track_type,)
            for kind in kinds:
                clip = Clip(ts, kind, name.media_id, seg.start_ms, seg.end_ms,
                            *((seg.width, seg.height) if kind == VIDEO else (0, 0)),
                            primed=name.track_type == AUDIO and (i == 0 or seg.discontinuity))
                (user.audio if kind == AUDIO else user.main if name.media_id == MAIN else user.aux).append(clip)
    for user in users.values():
        for clips in (user.audio, user.main, user.aux):
            clips.sort(key=lambda c: c.start_ms)
    return [u for _, u in sorted(users.items()) if u.audio or u.main or u.aux]


def video_clips(user: User, aux_use: int) -> list[Clip]:
    """-a 0: main video; 2: aux instead; 1: main, and aux wherever main has no picture."""
    if aux_use == MAIN_ONLY:
        return list(user.main)
    if aux_use == AUX_ONLY:
        return list(user.aux)
    chosen = list(user.main)
    for clip in user.aux:
        if not any(c.start_ms < clip.end_ms and clip.start_ms < c.end_ms for c in user.main):
            chosen.append(clip)
    return sorted(chosen, key=lambda c: c.start_ms)


def segments(clips: Sequence[Clip]) -> list[list[Clip]]:
    """Clips grouped into segments: a gap of GAP_MS or more with nothing recorded starts a new one."""
    groups: list[list[Clip]] = []
    reach = None
    for clip in sorted(clips, key=lambda c: (c.start_ms, c.kind)):
        if reach is None or clip.start_ms - reach >= GAP_MS:
            groups.append([])
            reach = clip.end_ms
        groups[-1].append(clip)
        reach = max(reach, clip.end_ms)
    return groups


def plan(users: Sequence[User], merge_all: bool, drop_gaps: bool, aux_use: int) -> list[Output]:
    outputs = []
    for user in users:
        video = video_clips(user, aux_use)
        groups = segments(user.audio + video)
        batches = [groups] if merge_all else [[g] for g in groups]
        for batch in batches:
            clips = [c for g in batch for c in g]
            spans: list[Span] = []
            out = 0
            for n, group in enumerate(batch):
                start, end = min(c.start_ms for c in group), max(c.end_ms for c in group)
                if n and not drop_gaps:
                    out += start - spans[-1].end_ms  # the gap stays in the file
                spans.append(Span(start, end, out))
                out += end - start
            first = min(c.start_ms for c in clips)
            has_video = any(c.kind == "video" for c in clips)
            name = f"{user.uid}_{naming.utc17(first)}" + ("_av.mp4" if has_video else ".m4a")
            outputs.append(Output(name, user.uid, tuple(c for c in clips if c.kind == "audio"),
                                  tuple(c for c in clips if c.kind == "video"), tuple(spans)))
    return outputs
