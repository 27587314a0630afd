"""The console (chalicelib/console.py, console_files.py, event_log.py): its page and API only
for the operators' key, an app's tasks, a task's files (presigned, playlists rewritten), its
events as the callback handler recorded them in time order, and its recording report."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chalice.test import Client

from chalicelib import aws, console, console_files, event_log, events, wiring
from chalicelib.apps import AppRegistry
from chalicelib.config import Settings
from chalicelib.events import EventQueue
from chalicelib.storage import Bucket
from tests.support.console_recording import ALICE, BOB, Recorded, send_events, store_recording
from tests.support.moto_app import SDKAPPID
from tests.support.task_records import task_record

KEY = "operators-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TASK = "Tc+nsole.1-"  # "+" and "." as TaskIds have them


@pytest.fixture
def client(registry: AppRegistry, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CLOUDREC_CONSOLE_KEY", KEY)
    console.failures.cache_clear()
    import app as chalice_app

    with Client(chalice_app.app) as c:
        yield c


def drain_events(settings: Settings) -> int:
    """Hand every queued event to the callback function, as its event source does; how many."""
    import app as chalice_app

    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    handled = 0
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages"):
        for m in msgs:
            record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                      "attributes": m["Attributes"], "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                      "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123:q",
                      "awsRegion": "us-east-1"}
            assert chalice_app.deliver_callbacks({"Records": [record]}, None) == {"batchItemFailures": []}
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            handled += 1
    return handled


@pytest.fixture
def recorded(client: Any, aws_env: Settings, tmp_path: Path) -> Recorded:
    aws.client("s3").create_bucket(Bucket="customer")
    storage = Bucket("customer", lambda: aws.client("s3"))
    done = store_recording(wiring.task_store(), storage, wiring.internal_bucket(), TASK, tmp_path, 1_700_000_000_000)
    send_events(wiring.event_queue(), done)
    assert drain_events(aws_env) == len(done.events)
    return done


def get(client: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    return client.http.get(path, headers=AUTH if headers is None else headers)


def task_path(task_id: str = TASK) -> str:
    return f"/console/api/apps/{SDKAPPID}/tasks/{urllib.parse.quote(task_id, safe='')}"


# -- who gets in ----------------------------------------------------------------------------------

def test_there_is_no_console_without_a_key(registry: AppRegistry) -> None:
    import app as chalice_app

    with Client(chalice_app.app) as c:
        for path in ("/console", "/console/console.js", "/console/api/apps", f"/console/api/apps/{SDKAPPID}/tasks"):
            assert get(c, path).status_code == 404, path


def test_the_api_wants_the_operators_key(client: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-key"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": KEY}, {"Authorization": f"Bearer {KEY}x"}):
        answer = get(client, "/console/api/apps", headers)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer", headers
        assert KEY not in answer.body.decode()
    answer = get(client, "/console/api/apps")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert json.loads(answer.body)["Apps"][0]["SdkAppId"] == SDKAPPID


def test_a_source_that_keeps_failing_is_refused(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDREC_AUTH_FAILURE_LIMIT", "3")
    wiring.reset()
    for _ in range(3):
        assert get(client, "/console/api/apps", {"Authorization": "Bearer guess"}).status_code == 401
    assert get(client, "/console/api/apps").status_code == 429  # even with the key, for a while


def test_the_page_and_its_files(client: Any) -> None:
    page = client.http.get("/console")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert b'src="console/console.js"' in page.body
    assert client.http.get("/console", headers={"If-None-Match": page.headers["ETag"]}).status_code == 304
    moved = client.http.get("/console/")
    assert moved.status_code == 301 and moved.headers["Location"] == "/console"
    script = client.http.get("/console/console.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert client.http.get("/console/console.css").headers["Content-Type"].startswith("text/css")
    hls = client.http.get("/console/hls.min.js")  # from npm (make console)
    assert hls.status_code == 200 and b"Hls" in hls.body
    for name in ("package.json", "app.py", "..%2Fapp.py", "index.htm"):
        assert client.http.get(f"/console/{name}").status_code == 404, name


# -- what it shows --------------------------------------------------------------------------------

def test_an_apps_tasks_are_listed_newest_first(client: Any, registry: AppRegistry) -> None:
    store = wiring.task_store()
    for n, (task_id, app) in enumerate((("T1", SDKAPPID), ("T2", SDKAPPID), ("T3", 1400000002))):
        store.admit(task_record(task_id, sdkappid=app, created_ms=1000 * n, room_id=f"room{n}", room_id_type=0),
                    None, None, 10)
    listed = json.loads(get(client, f"/console/api/apps/{SDKAPPID}/tasks").body)
    assert [t["TaskId"] for t in listed["Tasks"]] == ["T2", "T1"] and listed["Truncated"] is False
    assert listed["Tasks"][0] == {"TaskId": "T2", "RoomId": "room1", "RoomIdType": 0, "UserId": "robot",
                                  "Status": "Idle", "Desired": "run", "CreatedMs": 1000, "EndedMs": None,
                                  "HaCount": 0, "LeaveCode": None}
    apps = json.loads(get(client, "/console/api/apps").body)["Apps"]
    assert apps == [{"SdkAppId": SDKAPPID, "CallbackUrl": "", "Qps": 20, "MaxConcurrent": 3, "Active": 2,
                     "JanusUrl": "http://127.0.0.1:9/janus"}]
    for path in ("/console/api/apps/1400000002/tasks", "/console/api/apps/x1/tasks",
                 f"/console/api/apps/{SDKAPPID}/tasks/T3", f"/console/api/apps/{SDKAPPID}/tasks/nope"):
        assert get(client, path).status_code == 404, path  # 1400000002 is no registered app; T3 is not this app's


def test_a_task_shows_its_files_events_and_report(client: Any, recorded: Recorded) -> None:
    answer = get(client, task_path())
    assert answer.status_code == 200
    body = answer.body.decode()
    out = json.loads(body)
    task = out["Task"]
    assert task["TaskId"] == TASK and task["Status"] == "Ended" and task["EndedMs"] == recorded.ended_ms
    assert task["Storage"] == {"Vendor": "S3", "Region": "us-east-1", "Bucket": "customer", "Prefix": "rec"}
    assert '"ak"' not in body and '"sk"' not in body and "SecretKey" not in body  # no storage keys
    files = {f["Name"]: f for f in out["Files"]}
    assert set(files) == {*recorded.playlists.values(), recorded.mp4}
    alice = files[recorded.playlists[ALICE]]
    assert (alice["Kind"], alice["UserId"], alice["TrackType"], alice["Where"]) == ("hls", ALICE, "audio_video",
                                                                                     "storage")
    assert files[recorded.playlists[BOB]]["UserId"] == BOB and "Url" not in alice  # HLS plays through the API
    mp4 = files[recorded.mp4]
    assert mp4["Kind"] == "mp4" and mp4["UserId"] == ALICE and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in mp4["Url"]
    fetched = requests.get(mp4["Url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp" and len(fetched.content) == mp4["Size"]
    # events: every one the recorder sent, in time order (one was sent after a later one)
    got = [(e["EventType"], e["EventInfo"]["EventMsTs"]) for e in out["Events"]]
    assert got == sorted(((int(e.type), at) for e, at in recorded.events), key=lambda pair: pair[1])
    assert all(e["EventInfo"]["TaskId"] == TASK and "Mac" not in e for e in out["Events"])
    report = out["Report"]
    assert report["StartedAt"] == recorded.started_ms and report["EndedAt"] == recorded.ended_ms
    assert report["HandOvers"] == [{"At": recorded.started_ms + 3000, "From": 0, "To": 1}]
    streams = {(s["UserId"], s["Kind"]): s for s in report["Streams"]}
    assert set(streams) == {(ALICE, "video"), (ALICE, "audio"), (BOB, "audio")}
    assert streams[(BOB, "audio")]["Gaps"] == [{"At": recorded.started_ms + 1500, "DurationMs": 1500}]  # hand-over


def test_a_playlist_comes_back_with_presigned_segments(client: Any, recorded: Recorded) -> None:
    name = recorded.playlists[ALICE]
    answer = get(client, f"{task_path()}/playlist?file={urllib.parse.quote(name, safe='')}&where=storage")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    lines = answer.body.decode().splitlines()
    stored = aws.client("s3").get_object(Bucket="customer", Key=recorded.task.directory + name)["Body"].read()
    original = stored.decode().splitlines()
    assert len(lines) == len(original)
    uris = [line for line in lines if line and not line.startswith("#")]
    assert len(uris) == 3 and all("X-Amz-Signature=" in u for u in uris)
    assert [line for line in lines if line.startswith("#")] == [line for line in original if line.startswith("#")]
    for uri, segment in zip(uris, [line for line in original if line and not line.startswith("#")], strict=True):
        assert urllib.parse.unquote(urllib.parse.urlsplit(uri).path).endswith(f"/rec/{TASK}/{segment}")
    assert requests.get(uris[0], timeout=10).content[:1] == b"G"  # an MPEG-TS packet's sync byte
    for bad in (recorded.mp4, "../" + name, "x.m3u8", name + "&where=elsewhere"):
        path = f"{task_path()}/playlist?file={urllib.parse.quote(bad, safe='&=')}"
        assert get(client, path).status_code == 404, bad


def test_a_playlist_keeps_what_it_must_not_sign() -> None:
    text = ('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.000,\na_1.ts\n#EXTINF:2.000,\n'
            'https://elsewhere.example/b.ts\n#EXTINF:2.000,\n../other/c.ts\n#EXT-X-ENDLIST')
    out = console_files.rewrite_playlist(text, lambda name: f"signed:{name}")
    assert out.splitlines() == ['#EXTM3U', '#EXT-X-MAP:URI="signed:init.mp4"', "#EXTINF:2.000,", "signed:a_1.ts",
                                "#EXTINF:2.000,", "https://elsewhere.example/b.ts", "#EXTINF:2.000,",
                                "../other/c.ts", "#EXT-X-ENDLIST"]


# -- the events the callback handler keeps ------------------------------------------------------------

def test_each_event_is_kept_once_and_only_a_tasks_own(aws_env: Settings, registry: AppRegistry) -> None:
    import app as chalice_app

    task = task_record("Tev", event_key="its-key")
    wiring.task_store().admit(task, None, None, 10)
    queue = EventQueue(aws.client("sqs"), aws_env.events_queue)
    queue.publish(events.download_image_error("https://user:pw@img.example/a.png?token=s3cret", 0), task, 5000)
    url = aws.client("sqs").get_queue_url(QueueName=aws_env.events_queue)["QueueUrl"]
    message = aws.client("sqs").receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"][0]
    record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
              "attributes": message["Attributes"], "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
              "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123:q", "awsRegion": "us-east-1"}
    forged = json.loads(message["Body"])
    forged["Event"]["EventInfo"]["EventMsTs"] = 1
    for body in (message["Body"], message["Body"], json.dumps(forged)):  # again (redelivered), then forged
        chalice_app.deliver_callbacks({"Records": [{**record, "body": body, "messageId": body[-20:]}]}, None)
    kept = event_log.EventLog(wiring.internal_bucket()).read("Tev")
    assert len(kept) == 1 and kept[0]["EventType"] == 309 and kept[0]["EventInfo"]["EventMsTs"] == 5000
    assert kept[0]["EventInfo"]["Payload"] == {"Url": "https://img.example/a.png"}  # no credentials, no query
    assert wiring.internal_bucket().listing("events/Tev/")[0][0].startswith("events/Tev/0000000005000-309-")
