"""Mixed-stream layout geometry: (participants, MixLayoutParams, canvas) → windows.

The seed's numbers, exactly:
- grid (MixLayoutMode 3, default): 1 → the canvas; 2 → halves side by side; ≤ 4 → 1/2 × 1/2;
  ≤ 9 → 1/3; ≤ 16 → 1/4; more → 1/5; up to 25. Rows fill left to right in join order; the
  rows in use are centred vertically and a last, shorter row horizontally.
- floating (1): the first participant (or MaxResolutionUserId) fills the canvas; the others
  float over it from the bottom-left, 4 per row as 0.235 × 0.235 tiles with 0.012 gaps and
  margins while there are ≤ 17 windows, 5 per row as 0.188 tiles with 0.01 beyond; up to 25.
- screen share (2): MaxResolutionUserId big on the left (else the background shows there),
  the others in columns on the right, top to bottom: ≤ 5 windows → 1/5 × 1/4 (big 4/5);
  ≤ 7 → 1/7 × 1/6 (big 6/7); ≤ 9 → 1/9 × 1/8 (big 8/9); ≤ 17 → two columns of 1/10 × 1/8
  (big 4/5); more → the big one 4/5 × 7/8 and the rest along the bottom from the left; up to
  24. MaxResolutionUserAlign 1 mirrors it (big on the right).
- custom (4): MixLayoutList as given; windows without UserId take the remaining
  participants in join order.
Audio-only participants keep their window unless PureAudioDisableLayout is true.
Pixel values are even (YUV 4:2:0 planes halve them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chalicelib.models import MixLayoutParams

GRID, FLOATING, SCREEN_SHARE, CUSTOM = 3, 1, 2, 4
MAX_WINDOWS = {GRID: 25, FLOATING: 25, SCREEN_SHARE: 24, CUSTOM: 25}
MEDIA = {0: "main", 1: "aux"}


@dataclass(frozen=True)
class Participant:
    """A stream that may take a window: a user's main (or aux) video, or audio only."""

    user_id: str
    media_id: str = "main"
    has_video: bool = True


@dataclass(frozen=True)
class Window:
    """Where one participant (or nobody: background/placeholder) appears on the canvas."""

    x: int
    y: int
    width: int
    height: int
    user_id: str | None = None
    media_id: str = "main"
    z: int = 0
    alpha: int = 0  # 0 opaque … 255 transparent
    render_mode: int = 1
    placeholder: str | None = None  # image shown while the window has no picture


def even(value: float) -> int:
    return int(round(value / 2.0)) * 2


def _box(x: float, y: float, w: float, h: float, canvas: tuple[int, int]) -> tuple[int, int, int, int]:
    width, height = canvas
    left, top = min(even(x), width), min(even(y), height)
    return left, top, min(even(w), width - left), min(even(h), height - top)


def grid_side(count: int) -> tuple[int, int]:
    """(columns, rows) of the grid for `count` windows, as the seed sizes them."""
    if count <= 1:
        return 1, 1
    if count == 2:
        return 2, 1
    side = 2 if count <= 4 else 3 if count <= 9 else 4 if count <= 16 else 5
    return side, side


def grid(participants: Sequence[Participant], canvas: tuple[int, int]) -> list[Window]:
    width, height = canvas
    shown = list(participants)[: MAX_WINDOWS[GRID]]
    if not shown:
        return []
    cols, rows = grid_side(len(shown))
    tile_w, tile_h = width / cols, height / rows
    used_rows = math.ceil(len(shown) / cols)
    top0 = (rows - used_rows) * tile_h / 2
    windows = []
    for i, p in enumerate(shown):
        row, col = divmod(i, cols)
        in_row = min(cols, len(shown) - row * cols)
        left0 = (cols - in_row) * tile_w / 2
        x, y, w, h = _box(left0 + col * tile_w, top0 + row * tile_h, tile_w, tile_h, canvas)
        windows.append(Window(x, y, w, h, p.user_id, p.media_id))
    return windows


def _big_index(participants: Sequence[Participant], params: MixLayoutParams) -> int | None:
    if params.MaxResolutionUserId is None:
        return None
    media = MEDIA[params.MediaId]
    for i, p in enumerate(participants):
        if p.user_id == params.MaxResolutionUserId and p.media_id == media:
            return i
    return None


def floating(participants: Sequence[Participant], params: MixLayoutParams, canvas: tuple[int, int]) -> list[Window]:
    width, height = canvas
    people = list(participants)
    if not people:
        return []
    big = _big_index(people, params)
    main = people.pop(big if big is not None else 0)
    smalls = people[: MAX_WINDOWS[FLOATING] - 1]
    windows = [Window(0, 0, even(width), even(height), main.user_id, main.media_id, z=0)]
    total = len(smalls) + 1
    tile, gap, per_row = (0.235, 0.012, 4) if total <= 17 else (0.188, 0.01, 5)
    for i, p in enumerate(smalls):
        row, col = divmod(i, per_row)
        x = (gap + col * (tile + gap)) * width
        y = height - (gap + (row + 1) * tile + row * gap) * height
        windows.append(Window(*_box(x, y, tile * width, tile * height, canvas), p.user_id, p.media_id, z=1))
    return windows


def screen_share(participants: Sequence[Participant], params: MixLayoutParams,
                 canvas: tuple[int, int]) -> list[Window]:
    width, height = canvas
    people = list(participants)
    big_at = _big_index(people, params)
    big = people.pop(big_at) if big_at is not None else None
    smalls = people[: MAX_WINDOWS[SCREEN_SHARE] - 1]
    total = len(smalls) + 1
    boxes: list[tuple[float, float, float, float]] = []
    if total <= 9:
        per_col = 4 if total <= 5 else 6 if total <= 7 else 8
        small_w, small_h = width / (per_col + 1), height / per_col
        big_box = (0.0, 0.0, width - small_w, float(height))
        boxes = [(width - small_w, i * small_h, small_w, small_h) for i in range(len(smalls))]
    else:
        small_w, small_h = width / 10, height / 8
        big_box = (0.0, 0.0, width * 4 / 5, float(height) if total <= 17 else height * 7 / 8)
        for i in range(len(smalls)):
            if i < 16:
                col, row = divmod(i, 8)
                boxes.append((width * 4 / 5 + col * small_w, row * small_h, small_w, small_h))
            else:  # beyond 17 windows: along the bottom, from the left
                boxes.append(((i - 16) * small_w, height * 7 / 8, small_w, small_h))

    def place(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x, y, w, h = box
        if params.MaxResolutionUserAlign == 1:
            x = width - x - w
        return _box(x, y, w, h, canvas)

    windows = [Window(*place(big_box), big.user_id if big else None, big.media_id if big else "main", z=0)]
    windows += [Window(*place(b), p.user_id, p.media_id, z=1) for b, p in zip(boxes, smalls, strict=True)]
    return windows


def custom(participants: Sequence[Participant], params: MixLayoutParams, canvas: tuple[int, int]) -> list[Window]:
    named = {(w.UserId, MEDIA[w.MediaId]) for w in params.MixLayoutList or [] if w.UserId}
    free = [p for p in participants if (p.user_id, p.media_id) not in named and p.media_id == "main"]
    present = {(p.user_id, p.media_id) for p in participants}
    windows = []
    for spec in params.MixLayoutList or []:
        user: str | None = None
        media = MEDIA[spec.MediaId]
        if spec.UserId:
            user = spec.UserId if (spec.UserId, media) in present else None
        elif free:
            taken = free.pop(0)
            user, media = taken.user_id, taken.media_id
        placeholder = None
        if params.PlaceHolderMode == 1:
            placeholder = spec.SubBackgroundImage or params.DefaultSubBackgroundImage
        windows.append(Window(*_box(spec.Left, spec.Top, spec.Width, spec.Height, canvas), user, media,
                              z=spec.ImageLayer, alpha=spec.Alpha, render_mode=spec.RenderMode,
                              placeholder=placeholder))
    return windows


def layout(participants: Sequence[Participant], params: MixLayoutParams | None,
           canvas: tuple[int, int]) -> list[Window]:
    """The windows to draw, back to front (stable within a layer)."""
    params = params or MixLayoutParams(MixLayoutMode=GRID)
    people = [p for p in participants if p.has_video or not params.PureAudioDisableLayout]
    if params.MixLayoutMode == CUSTOM:
        windows = custom(people, params, canvas)
    else:
        mains = [p for p in people if p.media_id == "main" or (
            p.user_id == params.MaxResolutionUserId and p.media_id == MEDIA[params.MediaId])]
        if params.MixLayoutMode == FLOATING:
            windows = floating(mains, params, canvas)
        elif params.MixLayoutMode == SCREEN_SHARE:
            windows = screen_share(mains, params, canvas)
        else:
            windows = grid(mains, canvas)
        windows = [replace(w, render_mode=params.RenderMode, placeholder=params.DefaultSubBackgroundImage
                           if params.PlaceHolderMode == 1 else None) for w in windows]
    return sorted(windows, key=lambda w: w.z)


def fit(source: tuple[int, int], window: tuple[int, int], render_mode: int) -> tuple[tuple[int, int, int, int],
                                                                                        tuple[int, int, int, int]]:
    """How a picture of size `source` goes into a window: (crop x, y, w, h of the source,
    placement x, y, w, h inside the window). RenderMode 0 stretch, 1 crop (fill), 2 letterbox
    (fit), 3 smart stretch (crop at most 20 % of a side, stretch the rest)."""
    sw, sh = source
    ww, wh = window
    full = (0, 0, sw, sh)
    if render_mode == 0 or sw == 0 or sh == 0 or ww == 0 or wh == 0:
        return full, (0, 0, ww, wh)
    src_ratio, win_ratio = sw / sh, ww / wh
    if render_mode == 2:  # letterbox: the whole picture, centred, background around it
        if src_ratio > win_ratio:
            h = even(ww / src_ratio)
            return full, (0, even((wh - h) / 2), ww, h)
        w = even(wh * src_ratio)
        return full, (even((ww - w) / 2), 0, w, wh)
    limit = 0.2 if render_mode == 3 else 1.0
    if src_ratio > win_ratio:  # too wide: crop the sides
        keep = max(sw * (1 - limit), sh * win_ratio)
        cw = even(min(sw, keep))
        return (even((sw - cw) / 2), 0, cw, sh), (0, 0, ww, wh)
    keep = max(sh * (1 - limit), sw / win_ratio)
    ch = even(min(sh, keep))
    return (0, even((sh - ch) / 2), sw, ch), (0, 0, ww, wh)


def simulcast_layer(tile_width: int, canvas_width: int) -> int:
    """The simulcast substream to receive for a window: publishers send their picture at full,
    half and quarter width (substreams 2, 1, 0); take the smallest that still fills the tile
    when the full picture is about as wide as the canvas."""
    share = tile_width / max(1, canvas_width)
    return 0 if share <= 0.25 else 1 if share <= 0.5 else 2
