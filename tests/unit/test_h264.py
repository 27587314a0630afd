"""Reading H.264 access units: NAL units, keyframes, picture size, frame_num."""

from __future__ import annotations

import pytest

from recorder_container import h264
from tests.support.synthetic import h264_frames


@pytest.mark.parametrize("width,height", [(320, 180), (1280, 720), (642, 362)])
def test_sps_size_keyframes_and_frame_num(width: int, height: int) -> None:
    sps = None
    seen = []
    for frame in h264_frames(1.4, width=width, height=height, keyint=10):
        au = h264.inspect(frame.data, sps)
        sps = au.sps or sps
        seen.append((au.keyframe, au.frame_num))
    assert sps is not None and (sps.width, sps.height) == (width, height)
    assert seen[:12] == [(True, 0)] + [(False, n) for n in range(1, 10)] + [(True, 0), (False, 1)]


def test_nal_units_split_an_access_unit() -> None:
    frame = next(h264_frames(0.1))
    kinds = [h264.nal_type(u) for u in h264.nal_units(frame.data)]
    assert kinds[:2] == [h264.SPS, h264.PPS] and h264.IDR in kinds
