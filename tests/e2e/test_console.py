"""The console on the local stack, in headless Chromium: a finished recording (synthetic, made
with the project's writers: tests/support/console_recording.py) is put in the stack's storage,
its events go through the events queue to the callback function (the stack's event pump), and
the browser logs in, lists the app's tasks, opens the task — events, files, report timeline
and bitrate plot — and plays its HLS and its MP4. Screenshots: build/artifacts/console/ (the
README shows copies of 03-task.png and 04-report.png: docs/console.png, docs/console-report.png)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from chalicelib import events
from chalicelib.events import EventQueue
from chalicelib.storage import Bucket
from chalicelib.task_store import TaskStore
from infra.local.stack import CONSOLE_KEY_FILE
from tests.support.console_recording import ALICE, send_events, store_recording
from tests.support.stack import ROOT, LocalStack, wait_for

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "build" / "artifacts" / "console"
TASK = "TcOnsole+e2e."


def test_an_operator_logs_in_opens_a_task_and_plays_its_files(stack: LocalStack, tmp_path: Path) -> None:
    s3 = stack.boto("s3")
    s3.create_bucket(Bucket="console-customer")
    recorded = store_recording(TaskStore(stack.boto("dynamodb"), "cloudrec-tasks", "cloudrec-limits"),
                               Bucket("console-customer", lambda: s3), Bucket("cloudrec-internal", lambda: s3), TASK,
                               tmp_path, int(time.time() * 1000) - 60_000)
    send_events(EventQueue(stack.boto("sqs"), "cloudrec-events.fifo"), recorded)
    kept = f"events/{TASK}/"
    wait_for(lambda: s3.list_objects_v2(Bucket="cloudrec-internal", Prefix=kept).get("KeyCount", 0)
             == len(recorded.events), 30, "the callback function to keep the task's events")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    job = {"url": f"http://{stack.api_endpoint}/console", "key": (stack.run_dir / CONSOLE_KEY_FILE).read_text().strip(),
           "taskId": TASK, "hls": recorded.playlists[ALICE], "mp4": recorded.mp4, "out": str(ARTIFACTS)}
    done = subprocess.run(["node", str(ROOT / "tests/support/console_browser.js"), json.dumps(job)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in seen, seen.get("failure")

    assert seen["wrongKey"] == "That key was refused."
    assert TASK in seen["tasks"] and seen["status"] == "Ended"
    assert seen["taskId"] == TASK
    by_time = sorted(recorded.events, key=lambda sent: sent[1])
    assert seen["events"] == [int(event.type) for event, _ in by_time]  # time order, not sending order
    assert seen["events"][:2] == [events.EventType.RECORDER_START, events.EventType.UPLOAD_START]
    assert seen["timeline"] == {"streams": 3, "gaps": 2, "handovers": 1, "labels": ["ha0→ha1"]}
    assert seen["bitrateSeries"] == 3
    assert set(seen["files"]) == {*recorded.playlists.values(), recorded.mp4}
    assert seen["hls"]["currentTime"] > 1.0 and (seen["hls"]["width"], seen["hls"]["height"]) == (320, 180)
    assert seen["mp4"]["currentTime"] > 0.5 and seen["mp4"]["label"] == recorded.mp4
    # the key went to the console's own origin only: segments and MP4 are presigned storage URLs
    assert set(seen["requestsWithKey"]) == {f"http://{stack.api_endpoint}"}
    assert [e for e in seen["consoleErrors"] if "status of 401" not in e] == []  # 401: the wrong key
    for shot in ("01-login.png", "02-tasks.png", "03-task.png", "04-report.png", "05-playing-hls.png",
                 "06-playing-mp4.png"):
        assert (ARTIFACTS / shot).stat().st_size > 5_000, shot
