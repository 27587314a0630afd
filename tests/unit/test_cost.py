"""bench/cost.py: the Fargate size a recording needs, and what its hour costs."""

from __future__ import annotations

import pytest

from bench import cost


@pytest.mark.parametrize(("cores", "rss_mb", "size"), [
    (0.095, 206, (0.25, 0.5)),  # 2x CPU and 1.5x memory fit the smallest task
    (0.13, 206, (0.5, 1)),  # 0.26 vCPU: no longer 0.25
    (0.26, 214, (1, 2)),
    (0.4, 700, (1, 2)),  # 1050 MB: 1 vCPU's smallest memory, 2 GB, holds it
    (0.9, 3000, (2, 5)),
])
def test_the_smallest_fargate_size_with_headroom(cores: float, rss_mb: float, size: tuple[float, float]) -> None:
    assert cost.task_size(cores, rss_mb) == size


def test_an_hour_costs_the_task_and_the_heartbeats() -> None:
    mode = cost.Mode("x", 0.095, 206, streams=2, hls_gb_per_hour=0.37)
    c = cost.hourly(mode, 1.0)
    assert c["fargate"] == pytest.approx(0.25 * 0.04048 + 0.5 * 0.004445)
    assert c["dynamodb"] == pytest.approx(720 * 0.625 / 1e6)  # one heartbeat every 5 s
    assert c["s3"] == pytest.approx(2 * 2 * 300 * 0.005 / 1000)  # a segment and a playlist per 12 s, per stream
    with pytest.raises(ValueError):
        cost.task_size(3.0, 100)  # more than the largest size with headroom


def test_a_warm_worker_holds_recordings_by_cpu_or_by_memory_whichever_runs_out_first() -> None:
    light = cost.Mode("x", 0.1, 200, streams=2, hls_gb_per_hour=0.37)
    w = cost.on_worker(light, 1.0)
    assert w["per_worker"] == pytest.approx(2 * 0.8 * 0.7 / 0.1)  # CPU: 11.2 recordings
    assert w["fargate"] == pytest.approx((2 * 0.04048 + 4 * 0.004445) / w["per_worker"])
    fat = cost.Mode("y", 0.1, 1000, streams=2, hls_gb_per_hour=0.37)
    assert cost.on_worker(fat, 1.0)["per_worker"] == pytest.approx(4 * 1024 * 0.8 / 1000)  # memory: 3.3
