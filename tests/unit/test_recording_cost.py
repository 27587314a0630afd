"""The costs workers admit recordings by are the figures bench/capacity.py measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib import recording_cost
from chalicelib.models import CreateCloudRecordingRequest
from chalicelib.tasks import TaskParams

ROWS = json.loads((Path(__file__).resolve().parents[2] / "docs/capacity.json").read_text())["rows"]


def _row(mode: str, participants: int, marker: str) -> float:
    return next(float(r["cores"]) for r in ROWS if r["mode"] == mode and r["participants"] == participants
                and marker in r["name"])


@pytest.mark.parametrize(("resolution", "marker"), [("360p15", "640x360@15"), ("720p30", "1280x720@30")])
def test_single_stream_costs_follow_the_measured_rows(resolution: str, marker: str) -> None:
    for publishers in (1, 4, 9):
        measured = _row("single", publishers, marker)
        assert recording_cost.single_stream(publishers, resolution) == pytest.approx(measured, rel=0.12, abs=0.01)


def test_mixed_costs_follow_the_measured_rows() -> None:
    assert recording_cost.mixed(1280, 720, 15, inputs=4) == pytest.approx(_row("mixed", 4, "4-up"), rel=0.05)
    assert recording_cost.mixed(1280, 720, 15, inputs=9) == pytest.approx(_row("mixed", 9, "9-up"), rel=0.05)


def _params(body: dict) -> TaskParams:
    req = CreateCloudRecordingRequest.model_validate({
        "SdkAppId": 1400000001, "RoomId": "1", "UserId": "rec", "UserSig": "sig",
        "StorageParams": {"CloudStorage": {"Vendor": 1, "Region": "us-east-1", "Bucket": "b", "AccessKey": "a",
                                           "SecretKey": "s"}}, **body})
    return TaskParams.of_request(req)[0]


def test_a_task_is_admitted_at_its_mode_s_cost() -> None:
    single = recording_cost.task_cost(_params({"RecordParams": {"RecordMode": 1}}))
    assert single == recording_cost.SINGLE_BASE  # its streams add their cost as they come, measured
    small_mix = recording_cost.task_cost(_params({"RecordParams": {"RecordMode": 2}}))  # TRTC's 360x640@15
    big_mix = recording_cost.task_cost(_params({"RecordParams": {"RecordMode": 2}, "MixTranscodeParams": {
        "VideoParams": {"Width": 1920, "Height": 1080, "Fps": 30, "BitRate": 3000000, "Gop": 2}}}))
    assert single < small_mix < big_mix
    assert small_mix == pytest.approx(recording_cost.MIXED_720P15 * recording_cost.MIXED_FLOOR)
