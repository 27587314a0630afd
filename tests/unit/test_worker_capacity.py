"""A warm worker's capacity: its vCPUs less the headroom, each recording counted at the larger of
its admission cost and what its processes were measured to use."""

from __future__ import annotations

import pytest

from recorder_container.worker import TICK, Usage, capacity_of, tree_ticks


def test_capacity_is_the_cpus_less_the_headroom() -> None:
    assert capacity_of({"CLOUDREC_WORKER_CAPACITY": "2"}) == pytest.approx(1.6)
    assert capacity_of({"CLOUDREC_WORKER_CAPACITY": "4", "CLOUDREC_WORKER_HEADROOM": "0.5"}) == pytest.approx(2.0)
    assert capacity_of({}) > 0  # the machine's CPUs


def test_a_recording_s_use_counts_its_recorder_and_every_process_below_it() -> None:
    parents = {10: 1, 11: 10, 12: 10, 13: 12, 20: 1}  # 10 → 11, 12 → 13; 20 is another recording
    ticks = {10: 5, 11: 7, 12: 1, 13: 2, 20: 100}
    assert tree_ticks(10, parents, ticks) == 15
    assert tree_ticks(20, parents, ticks) == 100
    assert tree_ticks(99, parents, ticks) == 0  # gone


def test_use_is_the_cpu_rate_over_the_last_ten_seconds() -> None:
    usage = Usage()
    assert usage.sample(0.0, 0) == 0.0
    assert usage.sample(5.0, 5 * TICK) == pytest.approx(1.0)  # one vCPU busy
    assert usage.sample(10.0, int(7.5 * TICK)) == pytest.approx(0.75)
    assert usage.sample(20.0, int(7.5 * TICK)) == pytest.approx(0.0)  # idle for the whole window


def test_scale_in_protection_is_held_while_recording_and_renewed_hourly() -> None:
    """ECS's own API model checks the calls (botocore's Stubber): moto has no task protection."""
    import boto3
    from botocore.stub import Stubber

    from recorder_container.worker import PROTECTION_MINUTES, Protection

    ecs = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:ecs:us-east-1:1:task/fleet/abc"
    with Stubber(ecs) as stub:
        on = {"cluster": "arn:aws:ecs:us-east-1:1:cluster/fleet", "tasks": [arn], "protectionEnabled": True,
              "expiresInMinutes": PROTECTION_MINUTES}
        off = {"cluster": "arn:aws:ecs:us-east-1:1:cluster/fleet", "tasks": [arn], "protectionEnabled": False}
        for expected in (on, on, off):
            stub.add_response("update_task_protection", {"protectedTasks": [], "failures": []}, expected)
        p = Protection(lambda: ecs, "arn:aws:ecs:us-east-1:1:cluster/fleet", arn)
        p.hold(False, 0.0)  # nothing hosted, never protected: no call
        p.hold(True, 10.0)
        p.hold(True, 600.0)  # held: no call
        p.hold(True, 3700.0)  # an hour on: renewed
        p.hold(False, 3800.0)
        stub.assert_no_pending_responses()


def test_the_capacity_metrics_are_what_the_fleet_scales_on(capsys: pytest.CaptureFixture[str]) -> None:
    """The EMF line a worker logs: CloudWatch makes CapacityInUse (percent) of this fleet from it,
    the metric the template's target tracking names (infra/aws/fleet.py)."""
    import json

    from chalicelib.observability import get_metrics
    from infra.aws import fleet
    from recorder_container.worker import FLEET_DIMENSION, METRICS_SERVICE, publish

    metrics = get_metrics(METRICS_SERVICE)
    metrics.set_default_dimensions(**{FLEET_DIMENSION: "staging"})
    publish(metrics, capacity=1.6, in_use=0.4, recordings=3)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [directive] = line["_aws"]["CloudWatchMetrics"]
    spec = fleet.scaling_metric("staging")
    assert directive["Namespace"] == spec["Namespace"]
    assert sorted(directive["Dimensions"][0]) == sorted(d["Name"] for d in spec["Dimensions"])
    assert {d["Name"]: line[d["Name"]] for d in spec["Dimensions"]} == {d["Name"]: d["Value"] for d in spec["Dimensions"]}
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units[spec["MetricName"]] == spec["Unit"] == "Percent"
    assert line[spec["MetricName"]] == [25.0] and line["FreeCapacity"] == [1.2] and line["Recordings"] == [3.0]
