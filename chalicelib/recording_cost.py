"""What a recording costs a worker, in vCPUs: the figures bench/capacity.py measured on a 2-core
machine (docs/capacity.json; tests/unit/test_recording_cost.py keeps them in step), as LiveKit
Egress admits each job by a fixed CPU cost.

A Create does not say who will publish: a single-stream task is admitted at a recorder's own
cost, and each participant stream adds its class's cost as it comes. A mixed task decodes and
draws whoever comes into a picture whose size the Create does say: it is admitted at that
picture's cost. A worker counts each recording at the larger of its admission cost and what it
was measured to use lately (recorder_container/worker.py).
"""

from __future__ import annotations

from chalicelib.models import MixLayoutParams
from chalicelib.tasks import TaskParams

# single-stream, fitted to the 1/4/9-publisher rows (within 10 %): a recorder's own cost, then each
# publisher's
SINGLE_BASE = 0.030
PER_PUBLISHER = {"360p15": 0.036, "720p30": 0.044}
# mixed: the 4-up row (four 720p inputs into 1280x720@15), scaled by the output's pixel rate,
# never below half (decoding the inputs costs the same whatever the output)
MIXED_720P15 = 0.404
MIXED_PIXEL_RATE = 1280 * 720 * 15
MIXED_FLOOR = 0.5
PER_EXTRA_INPUT = 0.015  # the 9-up row against the 4-up one: five more (small) inputs


def single_stream(publishers: int, resolution: str = "720p30") -> float:
    """A single-stream task recording `publishers` publishers of that class."""
    return SINGLE_BASE + PER_PUBLISHER[resolution] * publishers


def mixed(width: int, height: int, fps: int, inputs: int = 4) -> float:
    """A mixed task drawing `inputs` publishers into a width x height picture at fps."""
    scale = max(MIXED_FLOOR, width * height * fps / MIXED_PIXEL_RATE)
    return MIXED_720P15 * scale + PER_EXTRA_INPUT * max(0, inputs - 4)


def task_cost(params: TaskParams, layout: MixLayoutParams | None = None) -> float:
    """What a new task is admitted at."""
    if params.mixed:
        width, height = params.canvas()
        fps = params.transcode.VideoParams.Fps if params.transcode and params.transcode.VideoParams else 15
        windows = len(layout.MixLayoutList or []) if layout is not None else 0
        return mixed(width, height, fps, max(4, windows))
    return single_stream(0)
