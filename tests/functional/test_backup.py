"""The scheduled delivery of backups: files an ended task left in the backup storage move on
to the customer's bucket (segments before playlists), then 305 Status 2 and the task's output
jobs; what cannot be delivered in time is deleted with a last 308."""

from __future__ import annotations

import time

from chalicelib import aws, backup, output_jobs, post_record, wiring
from chalicelib.config import Settings
from chalicelib.events import LeaveCode
from chalicelib.tasks import StorageFile, TaskRecord
from tests.support.queued import queued_events
from tests.support.task_records import admitted

BUCKET = "customer"
STEM = "rec/{}/1400000001_8848__UserId_s_YWxpY2U.__UserId_e_main_video"


def ended_task(task_id: str, **record: object) -> TaskRecord:
    """A task to end (its recorder still holds it until the test ends it)."""
    return admitted(task_id, BUCKET, **record)


def keep(task: TaskRecord) -> list[str]:
    stem = STEM.format(task.task_id)
    keys = [f"{stem}_20261130110000000.ts", f"{stem}_20261130110004000.ts", f"{stem}.m3u8"]
    kept = backup.Backup(wiring.internal_bucket(), task.task_id)
    for key in keys:
        kept.keep(key, key.encode(), "application/vnd.apple.mpegurl" if key.endswith("m3u8") else "video/mp2t")
    wiring.task_store().put_file(task.task_id, StorageFile(keys[-1].rsplit("/", 1)[1], "alice", "video", 0))
    return keys


def delivery(settings: Settings, now_s: float | None = None) -> backup.Delivery:
    return backup.deliver(wiring.task_store(), wiring.internal_bucket(), wiring.event_queue(), settings,
                          time.time() if now_s is None else now_s)


def deliver(settings: Settings, now_s: float | None = None) -> int:
    return delivery(settings, now_s).moved


def test_how_long_an_ended_task_s_files_have_waited_is_told(aws_env: Settings) -> None:
    """The age of the oldest file left in backup (the metric the backup-age alarm watches)."""
    task = ended_task("bk+age.")
    keep(task)
    assert delivery(aws_env, time.time() + 900).oldest_s == 0  # a running task's files are its recorder's
    wiring.task_store().finish(task.task_id, int(time.time() * 1000), leave_code=LeaveCode.API_STOP)
    assert 890 <= delivery(aws_env, time.time() + 900).oldest_s <= 910  # the customer's bucket is missing
    aws.client("s3").create_bucket(Bucket=BUCKET)
    done = delivery(aws_env, time.time() + 900)
    assert (done.moved, done.oldest_s) == (3, 0)


def test_an_ended_task_s_backup_reaches_the_customer_then_305_status_2_and_its_outputs(aws_env: Settings) -> None:
    store = wiring.task_store()
    task = ended_task("bk+1.", OutputFormat=3)  # MP4 wanted
    keys = keep(task)
    assert deliver(aws_env) == 0  # its recorder still runs: the backup is the recorder's
    store.finish(task.task_id, int(time.time() * 1000), leave_code=LeaveCode.API_STOP)
    assert post_record.request(store.get(task.task_id), store, wiring.internal_bucket()) == 0  # type: ignore[arg-type]
    assert deliver(aws_env) == 0  # the customer's bucket does not exist yet: all kept
    assert len(wiring.internal_bucket().listing(f"backup/{task.task_id}/")) == 3
    aws.client("s3").create_bucket(Bucket=BUCKET)
    assert deliver(aws_env) == 3
    s3 = aws.client("s3")
    for key in keys:
        got = s3.get_object(Bucket=BUCKET, Key=key)
        assert got["Body"].read() == key.encode() and got["ContentType"].startswith(("video/", "application/"))
    assert wiring.internal_bucket().listing(f"backup/{task.task_id}/") == []
    assert [e["EventInfo"]["Payload"] for e in queued_events(305)] == [{"Status": 2}]
    markers = [k for k, _ in wiring.internal_bucket().listing(output_jobs.MARKER_PREFIX)]
    assert len(markers) == 1 and task.task_id in markers[0]  # the MP4 job, requested now that the HLS is whole
    assert deliver(aws_env) == 0


def test_files_that_cannot_be_delivered_in_time_are_deleted_with_a_last_308(aws_env: Settings) -> None:
    store = wiring.task_store()
    task = ended_task("bk+2.")
    keep(task)
    store.finish(task.task_id, int(time.time() * 1000), leave_code=LeaveCode.API_STOP)
    assert deliver(aws_env, time.time() + aws_env.backup_keep_s + 60) == 0
    assert wiring.internal_bucket().listing(f"backup/{task.task_id}/") == []
    events = queued_events()
    assert [e["EventType"] for e in events] == [308]
    assert events[0]["EventInfo"]["Payload"] == {
        "Code": "BackupExpired", "Message": "3 files could not be stored within 7 days"}


def test_an_endlist_owed_is_paid_once_the_storage_is_back(aws_env: Settings) -> None:
    """A successor could not read its dead predecessor's playlist while the storage was down:
    the debt it left ends that playlist later, after the files, with no 305 of its own."""
    from chalicelib.playlist import Segment, parse, render

    store, s3 = wiring.task_store(), aws.client("s3")
    task = ended_task("bk+3.")
    key = STEM.format(task.task_id) + ".m3u8"
    store.finish(task.task_id, int(time.time() * 1000), leave_code=LeaveCode.API_STOP)
    backup.Backup(wiring.internal_bucket(), task.task_id).owe_endlist(key)
    assert deliver(aws_env) == 0  # the bucket is not there: the debt waits
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=render([Segment("a_20261130110000000.ts", 0, 4000, 1)], 0, False))
    assert deliver(aws_env) == 1
    assert parse(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()).ended
    assert queued_events(305) == []


def test_outputs_nobody_requested_are_requested_and_a_job_that_stalls_ends_in_310_status_2(
        aws_env: Settings) -> None:
    """The recorder died between the task's end and asking for its MP4: the overdue sweep asks.
    The job's function then fails for good (it never makes progress): the sweep reports it as
    failed, once, and the task owes nothing more; a late success is not counted again."""
    store = wiring.task_store()
    task = ended_task("bk+4.", OutputFormat=3)
    keep(task)
    backup.Backup(wiring.internal_bucket(), task.task_id).drop(STEM.format(task.task_id) + ".m3u8")
    for key, _ in wiring.internal_bucket().listing(f"backup/{task.task_id}/"):
        wiring.internal_bucket().delete([key])  # the HLS is whole: nothing waits in the backup
    now = time.time()
    store.finish(task.task_id, int(now * 1000), leave_code=LeaveCode.API_STOP)  # and nothing more
    deps = wiring.post_deps()
    assert post_record.sweep(deps, now + 5) == 0  # the recorder may still ask
    assert post_record.sweep(deps, now + 200) == 1
    markers = [k for k, _ in wiring.internal_bucket().listing(output_jobs.MARKER_PREFIX) if task.task_id in k]
    assert len(markers) == 1
    assert post_record.sweep(deps, now + 300) == 0  # requested: due once it stalls
    assert post_record.sweep(deps, now + post_record.OUTPUTS_STALL_S + 300) == 1
    events = queued_events(310)
    assert [e["EventInfo"]["Payload"]["Status"] for e in events] == [2]
    assert store.outputs_due(int((now + 10**6) * 1000)) == []  # settled
    stem = markers[0].split("/")[2]
    assert store.output_job_done(task.task_id, stem, failed=False) is None  # a late success is not counted twice
