"""The API's metrics under the local stack's threaded server: requests add and flush at once."""

from __future__ import annotations

import json
import threading

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.observability import get_metrics


def test_metrics_shared_by_threads_lose_nothing_and_never_raise(capsys: pytest.CaptureFixture[str]) -> None:
    """Four threads each add two metrics and flush, 500 times: with Powertools' bare Metrics some
    of them raised (a dict changed size during a flush), which the API answered with a 500."""
    metrics = get_metrics("cloudrec-test")
    errors: list[BaseException] = []

    def requests() -> None:
        for _ in range(500):
            try:
                metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
                metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=2.5)
                metrics.flush_metrics()
            except Exception as exc:  # the defect this test is about
                errors.append(exc)

    threads = [threading.Thread(target=requests) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    def total(name: str) -> float:
        return sum(sum(v) if isinstance(v := line.get(name, 0), list) else v for line in lines)

    assert total("Requests") == 2000
    assert total("Latency") == pytest.approx(2000 * 2.5)
