"""Spreading a big task over shard processes: who records whom, and the pipe between them."""

from __future__ import annotations

from chalicelib.subscription import Selected
from recorder_container.shards import Command, Report, plan_shards


def test_plan_shards_keeps_users_and_fills_in_order() -> None:
    plan = plan_shards({"a": 2, "b": 2, "c": 2}, {}, per_shard=4, max_shards=3)
    assert plan == {"a": 0, "b": 0, "c": 1}
    # b left, d arrives: users keep their shard, the newcomer takes the free room in shard 0
    assert plan_shards({"a": 2, "c": 2, "d": 2}, plan, per_shard=4, max_shards=3) == {"a": 0, "c": 1, "d": 0}
    # over capacity: the least loaded shard
    full = plan_shards({u: 4 for u in "abcd"}, {}, per_shard=4, max_shards=3)
    assert sorted(full.values()) == [0, 0, 1, 2]


def test_the_pipe_reads_back_what_it_writes() -> None:
    selected = (Selected("a+b/=", "0", "audio", "main"), Selected("用户", "1", "video", "aux"))
    for command in (Command(selected=selected), Command(stop=True), Command()):
        line = command.line()
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert Command.parse(line) == command
    for report in (Report("media"), Report("stopped", 3)):
        assert Report.parse(report.line().encode()) == report
