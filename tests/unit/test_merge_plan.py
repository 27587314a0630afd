"""The merge tool's plan: segments at gaps of 15 s or more, aux choice, the wall → output map."""

from __future__ import annotations

from pathlib import Path

from tools.merge_plan import GAP_MS, Clip, User, plan, segments, video_clips


def clip(kind: str, start_s: float, end_s: float, media: str = "main") -> Clip:
    return Clip(Path(f"{kind}{start_s}.ts"), kind, media, int(start_s * 1000), int(end_s * 1000))


def test_a_gap_of_15_s_or_more_starts_a_segment_and_the_reach_is_the_latest_end() -> None:
    clips = [clip("video", 0, 30), clip("audio", 2, 5), clip("audio", 25, 26),  # audio ends early, video goes on
             clip("video", 30 + GAP_MS / 1000 - 0.001, 50),  # just under 15 s after the video: same segment
             clip("audio", 65, 70)]  # exactly 15 s after everything: a new one
    groups = segments(clips)
    assert [len(g) for g in groups] == [4, 1]


def test_aux_choice() -> None:
    user = User("u", main=[clip("video", 0, 10), clip("video", 40, 50)],
                aux=[clip("video", 5, 12, "aux"), clip("video", 20, 30, "aux")])
    assert [c.start_ms for c in video_clips(user, 0)] == [0, 40_000]
    assert [c.start_ms for c in video_clips(user, 1)] == [0, 20_000, 40_000]  # aux only where main is absent
    assert [c.media for c in video_clips(user, 2)] == ["aux", "aux"]


def test_merge_mode_maps_wall_time_with_and_without_gaps() -> None:
    user = User("u", audio=[clip("audio", 0, 10), clip("audio", 40, 45)])
    (kept,) = plan([user], merge_all=True, drop_gaps=False, aux_use=0)
    assert kept.name.endswith(".m4a") and kept.duration_ms == 45_000 and kept.out_ms(41_000) == 41_000
    (saved,) = plan([user], merge_all=True, drop_gaps=True, aux_use=0)
    assert saved.duration_ms == 15_000 and saved.out_ms(41_000) == 11_000 and saved.out_ms(20_000) is None
    assert len(plan([user], merge_all=False, drop_gaps=False, aux_use=0)) == 2
