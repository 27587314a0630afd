"""Layout geometry against every rule of the seed, for 1 … 25 participants."""

from __future__ import annotations

import itertools

import pytest

from chalicelib.layouts import Participant, Window, even, fit, grid_side, layout
from chalicelib.models import MixLayout, MixLayoutParams

W, H = 1280, 720


def people(n: int, audio_only: set[int] = frozenset()) -> list[Participant]:  # type: ignore[assignment]
    return [Participant(f"u{i}", has_video=i not in audio_only) for i in range(n)]


def params(mode: int, **kw: object) -> MixLayoutParams:
    return MixLayoutParams(MixLayoutMode=mode, **kw)  # type: ignore[arg-type]


def inside(w: Window) -> bool:
    return 0 <= w.x and 0 <= w.y and w.x + w.width <= W and w.y + w.height <= H


def overlap(a: Window, b: Window) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


@pytest.mark.parametrize("n", range(1, 26))
def test_grid_sizes_follow_the_seed(n: int) -> None:
    windows = layout(people(n), params(3), (W, H))
    assert len(windows) == n and all(inside(w) for w in windows)
    cols, rows = grid_side(n)
    side = 2 if n <= 4 else 3 if n <= 9 else 4 if n <= 16 else 5
    expected = {1: (1, 1), 2: (2, 1)}.get(n, (side, side))
    assert (cols, rows) == expected
    for w in windows:
        assert abs(w.width - W / cols) <= 2 and abs(w.height - H / rows) <= 2
    assert not any(overlap(a, b) for a, b in itertools.combinations(windows, 2))
    assert [w.user_id for w in windows] == [f"u{i}" for i in range(n)]  # join order
    assert all(v % 2 == 0 for w in windows for v in (w.x, w.y, w.width, w.height))


def test_grid_details() -> None:
    one = layout(people(1), None, (W, H))  # grid is the default
    assert [(w.x, w.y, w.width, w.height) for w in one] == [(0, 0, W, H)]
    two = layout(people(2), params(3), (W, H))
    assert [(w.x, w.y, w.width, w.height) for w in two] == [(0, 0, 640, 720), (640, 0, 640, 720)]
    three = layout(people(3), params(3), (W, H))
    assert [(w.x, w.y) for w in three] == [(0, 0), (640, 0), (320, 360)]  # the short last row centred
    five = layout(people(5), params(3), (W, H))
    assert {w.y for w in five} == {120, 360}  # two of three rows in use, centred


@pytest.mark.parametrize("n", range(1, 26))
def test_floating_follows_the_seed(n: int) -> None:
    windows = layout(people(n), params(1), (W, H))
    assert len(windows) == n and all(inside(w) for w in windows)
    big, smalls = windows[0], windows[1:]
    assert (big.x, big.y, big.width, big.height, big.user_id) == (0, 0, W, H, "u0")
    tile, gap, per_row = (0.235, 0.012, 4) if n <= 17 else (0.188, 0.01, 5)
    for i, w in enumerate(smalls):
        row, col = divmod(i, per_row)
        assert abs(w.width - tile * W) <= 2 and abs(w.height - tile * H) <= 2
        assert abs(w.x - (gap + col * (tile + gap)) * W) <= 2
        assert abs(w.y + w.height - (H - (gap + row * (tile + gap)) * H)) <= 2  # from the bottom up
        assert w.z > big.z
    assert not any(overlap(a, b) for a, b in itertools.combinations(smalls, 2))


def test_floating_big_window_and_audio_only() -> None:
    windows = layout(people(4, audio_only={1}), params(1, MaxResolutionUserId="u2"), (W, H))
    assert windows[0].user_id == "u2" and [w.user_id for w in windows[1:]] == ["u0", "u1", "u3"]
    dropped = layout(people(4, audio_only={1}), params(1, PureAudioDisableLayout=True), (W, H))
    assert [w.user_id for w in dropped] == ["u0", "u2", "u3"]


@pytest.mark.parametrize("n", range(1, 25))
def test_screen_share_follows_the_seed(n: int) -> None:
    windows = layout(people(n), params(2, MaxResolutionUserId="u0"), (W, H))
    assert len(windows) == n and all(inside(w) for w in windows)
    big, smalls = windows[0], windows[1:]
    assert big.user_id == "u0"
    if n <= 5:
        big_size, small = (W * 4 / 5, H), (W / 5, H / 4)
    elif n <= 7:
        big_size, small = (W * 6 / 7, H), (W / 7, H / 6)
    elif n <= 9:
        big_size, small = (W * 8 / 9, H), (W / 9, H / 8)
    elif n <= 17:
        big_size, small = (W * 4 / 5, H), (W / 10, H / 8)
    else:
        big_size, small = (W * 4 / 5, H * 7 / 8), (W / 10, H / 8)
    assert (big.x, big.y) == (0, 0) and abs(big.width - big_size[0]) <= 2 and abs(big.height - big_size[1]) <= 2
    for i, w in enumerate(smalls):
        assert abs(w.width - small[0]) <= 2 and abs(w.height - small[1]) <= 2
        if i < 16:
            assert w.x >= big.width - 2  # the columns on the right, top to bottom
        else:
            assert w.y >= big.height - 2 and abs(w.x - (i - 16) * W / 10) <= 2  # along the bottom
    assert not any(overlap(a, b) for a, b in itertools.combinations(windows, 2))


def test_screen_share_without_a_big_user_and_mirrored() -> None:
    windows = layout(people(3), params(2), (W, H))
    assert windows[0].user_id is None and [w.user_id for w in windows[1:]] == ["u0", "u1", "u2"]
    right = layout(people(3), params(2, MaxResolutionUserId="u1", MaxResolutionUserAlign=1), (W, H))
    assert right[0].user_id == "u1" and right[0].x == W - right[0].width
    assert all(w.x == 0 for w in right[1:])


def test_screen_share_big_window_shows_the_aux_stream() -> None:
    parts = [Participant("teacher"), Participant("teacher", "aux"), Participant("s1")]
    windows = layout(parts, params(2, MaxResolutionUserId="teacher", MediaId=1), (W, H))
    assert (windows[0].user_id, windows[0].media_id) == ("teacher", "aux")
    assert [(w.user_id, w.media_id) for w in windows[1:]] == [("teacher", "main"), ("s1", "main")]


def test_custom_layout_fills_unnamed_windows_in_join_order() -> None:
    spec = params(4, PlaceHolderMode=1, DefaultSubBackgroundImage="https://x/default.png", MixLayoutList=[
        MixLayout(Top=0, Left=0, Width=640, Height=720, UserId="u2", ImageLayer=1, RenderMode=2),
        MixLayout(Top=0, Left=640, Width=640, Height=360),
        MixLayout(Top=360, Left=640, Width=640, Height=360, Alpha=100),
        MixLayout(Top=100, Left=100, Width=200, Height=200, UserId="gone", ImageLayer=2,
                  SubBackgroundImage="https://x/away.png"),
    ])
    windows = layout(people(3), spec, (W, H))
    by_z = [(w.user_id, w.z) for w in windows]
    assert by_z == [("u0", 0), ("u1", 0), ("u2", 1), (None, 2)]  # back to front
    gone = windows[-1]
    assert gone.placeholder == "https://x/away.png"
    assert windows[1].alpha == 100 and windows[2].render_mode == 2
    assert windows[0].placeholder == "https://x/default.png"


@pytest.mark.parametrize("mode,cap", [(3, 25), (1, 25), (2, 24)])
def test_window_caps(mode: int, cap: int) -> None:
    assert len(layout(people(30), params(mode), (W, H))) == cap


def test_fit_render_modes() -> None:
    # a 16:9 picture into a square window
    assert fit((1280, 720), (400, 400), 0) == ((0, 0, 1280, 720), (0, 0, 400, 400))  # stretch
    assert fit((1280, 720), (400, 400), 1) == ((280, 0, 720, 720), (0, 0, 400, 400))  # crop to fill
    assert fit((1280, 720), (400, 400), 2) == ((0, 0, 1280, 720), (0, 88, 400, 224))  # letterbox
    crop, place = fit((1280, 720), (400, 400), 3)  # smart: at most 20 % cropped, then stretched
    assert crop == (128, 0, 1024, 720) and place == (0, 0, 400, 400)
    # a tall picture into a wide window
    assert fit((360, 640), (640, 360), 1)[0] == (0, 220, 360, 202)
    assert even(3) == 4 and even(5) == 4


def test_simulcast_layer_closest_to_the_tile() -> None:
    from chalicelib.layouts import simulcast_layer

    assert simulcast_layer(1280, 1280) == 2  # the whole canvas: full resolution
    assert simulcast_layer(640, 1280) == 1  # half width
    assert simulcast_layer(300, 1280) == 0  # a floating tile: the smallest layer
