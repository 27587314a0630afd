"""The API through Chalice's test client, with moto and a fake launcher."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from chalice.test import Client

from chalicelib import limits, replay, wiring
from chalicelib.apps import App, AppRegistry, RoomBackend
from chalicelib.dispatch import Direct
from chalicelib.models import SubscribeStreamUserIds
from chalicelib.signing import sign_tc3
from chalicelib.task_store import ENDED
from chalicelib.tasks import StorageFile
from chalicelib.usersig import gen_usersig
from tests.support.fakes import FakeClock, FakeLauncher
from tests.support.moto_app import SDKAPPID, SECRET_ID, SECRET_KEY, USERSIG_KEY

HOST = "127.0.0.1:8000"


@pytest.fixture
def launcher(registry: AppRegistry, monkeypatch: pytest.MonkeyPatch) -> FakeLauncher:
    fake = FakeLauncher()
    monkeypatch.setattr(wiring, "launcher", lambda: fake)
    return fake


@pytest.fixture
def client(launcher: FakeLauncher) -> Any:
    import app as chalice_app

    with Client(chalice_app.app) as c:
        yield c


def call(client: Any, action: str, params: dict[str, Any], *, secret: tuple[str, str] = (SECRET_ID, SECRET_KEY),
         version: str = "2019-07-22", region: str | None = "ap-guangzhou", ts: int | None = None,
         body: bytes | None = None, method: str = "POST") -> dict[str, Any]:
    ts = int(time.time()) if ts is None else ts
    if method == "GET":
        query = urlencode(_flatten(params))
        ctype, payload = "application/x-www-form-urlencoded", b""
    else:
        query, ctype = "", "application/json"
        payload = json.dumps(params).encode() if body is None else body
    headers = {"Host": HOST, "Content-Type": ctype, "X-TC-Action": action, "X-TC-Version": version,
               "X-TC-Timestamp": str(ts),
               "Authorization": sign_tc3(secret[0], secret[1], method, HOST, ctype, payload, ts, query)}
    if region:
        headers["X-TC-Region"] = region
    if method == "GET":
        resp = client.http.get("/?" + query, headers=headers)
    else:
        resp = client.http.post("/", headers=headers, body=payload)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    out: dict[str, Any] = json.loads(resp.body)["Response"]
    assert out["RequestId"]
    return out


def _flatten(params: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(params, dict):
        return [kv for k, v in params.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(params, list):
        return [kv for i, v in enumerate(params) for kv in _flatten(v, f"{prefix}.{i}")]
    return [(prefix, str(params))]


def create_params(user: str = "rec_1", room: str = "3560", **extra: Any) -> dict[str, Any]:
    return {
        "SdkAppId": SDKAPPID, "RoomId": room, "UserId": user,
        "UserSig": gen_usersig(SDKAPPID, USERSIG_KEY, user, int(time.time())),
        "RecordParams": {"RecordMode": 1, "MaxIdleTime": 30},
        "StorageParams": {"CloudStorage": {"Vendor": 1, "Region": "us-east-1", "Bucket": "b",
                                           "AccessKey": "AKSTORAGE", "SecretKey": "storage-secret"}},
        **extra,
    }


def error(out: dict[str, Any]) -> str:
    assert "Error" in out, out
    return str(out["Error"]["Code"])


def test_lifecycle(client: Any, launcher: FakeLauncher) -> None:
    out = call(client, "CreateCloudRecording", create_params())
    task_id = out["TaskId"]
    assert launcher.launched == [(task_id, 0)]
    described = call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id})
    assert described["Status"] == "Idle" and described["StorageFileList"] == []
    modified = call(client, "ModifyCloudRecording", {
        "SdkAppId": SDKAPPID, "TaskId": task_id,
        "SubscribeStreamUserIds": {"SubscribeVideoUserIds": ["alice", "bob.*$"]}})
    assert modified["TaskId"] == task_id
    stored = wiring.task_store().get(task_id)
    assert stored is not None and stored.config_version == 1
    assert stored.subscription == SubscribeStreamUserIds(SubscribeVideoUserIds=["alice", "bob.*$"])
    # Describe and Delete of one task sign the same bytes: a second apart, they are two requests
    deleted = call(client, "DeleteCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id},
                   ts=int(time.time()) + 1)
    assert deleted["TaskId"] == task_id
    assert call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id},
                ts=int(time.time()) + 2)["Status"] == "Exited"
    assert error(call(client, "ModifyCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id,
                                                       "MixLayoutParams": {"MixLayoutMode": 3}})) == "ResourceNotFound"
    # the recorder finishes: the task is gone for the API
    assert wiring.task_store().finish(task_id, int(time.time() * 1000))
    for shift, action in ((3, "DescribeCloudRecording"), (4, "DeleteCloudRecording")):
        out = call(client, action, {"SdkAppId": SDKAPPID, "TaskId": task_id}, ts=int(time.time()) + shift)
        assert error(out) == "ResourceNotFound" and "ended" in out["Error"]["Message"]


def test_describe_lists_the_files_in_storage_and_none_of_a_vod_task(client: Any, launcher: FakeLauncher) -> None:
    vod_params = create_params(user="rec_vod")
    vod_params["StorageParams"] = {"CloudVod": {"TencentVod": {}}}
    tasks = {name: call(client, "CreateCloudRecording", params)["TaskId"]
             for name, params in (("storage", create_params()), ("vod", vod_params))}
    for task_id in tasks.values():
        wiring.task_store().put_file(task_id, StorageFile(f"{task_id}.m3u8", "alice", "audio_video", 1700000000000))
    listed = {name: call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id})
              for name, task_id in tasks.items()}
    assert [f["FileName"] for f in listed["storage"]["StorageFileList"]] == [f"{tasks['storage']}.m3u8"]
    assert listed["storage"]["StorageFileList"][0]["UserId"] == "alice"
    assert listed["vod"]["StorageFileList"] == []


def test_task_id_is_opaque_and_unique(client: Any) -> None:
    ids = {call(client, "CreateCloudRecording", create_params(user=f"rec_{i}"))["TaskId"] for i in range(3)}
    assert len(ids) == 3
    for task_id in ids:
        assert len(task_id) == 44 and set(task_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.")


def test_get_requests_work(client: Any) -> None:
    out = call(client, "CreateCloudRecording", create_params(), method="GET")
    got = call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": out["TaskId"]}, method="GET")
    assert got["Status"] == "Idle"


@pytest.mark.parametrize("kwargs,code", [
    ({"secret": (SECRET_ID, "wrong")}, "AuthFailure.SignatureFailure"),
    ({"secret": ("AKIDNOBODY", SECRET_KEY)}, "AuthFailure.SecretIdNotFound"),
    ({"ts": int(time.time()) - 3600}, "AuthFailure.SignatureExpire"),
    ({"version": "2017-01-01"}, "NoSuchVersion"),
    ({"region": None}, "MissingParameter"),
    ({"region": "eu-nowhere-1"}, "UnsupportedRegion"),
    ({"body": b"{not json"}, "InvalidParameter.BodyParamsError"),
    ({"body": b"[1, 2]"}, "InvalidParameter.BodyParamsError"),
])
def test_envelope_errors(client: Any, kwargs: dict[str, Any], code: str) -> None:
    assert error(call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "x"}, **kwargs)) == code


def test_unknown_action(client: Any) -> None:
    assert error(call(client, "StartEverything", {"SdkAppId": SDKAPPID})) == "InvalidAction"


def test_secret_id_must_own_the_app(client: Any, registry: AppRegistry) -> None:
    registry.put_app(App(sdkappid=1400000999, usersig_key="k", room=RoomBackend("http://x")), "AKIDOTHER", "other")
    out = call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "x"},
               secret=("AKIDOTHER", "other"))
    assert error(out) == "AuthFailure.UnauthorizedOperation"
    assert error(call(client, "DescribeCloudRecording", {"SdkAppId": 1400000998, "TaskId": "x"})) == (
        "AuthFailure.UnauthorizedOperation")


def test_foreign_and_unknown_tasks_are_not_found(client: Any, registry: AppRegistry) -> None:
    registry.put_app(App(sdkappid=1400000777, usersig_key="k", room=RoomBackend("http://x")), SECRET_ID, SECRET_KEY)
    task_id = call(client, "CreateCloudRecording", create_params())["TaskId"]
    assert error(call(client, "DescribeCloudRecording", {"SdkAppId": 1400000777, "TaskId": task_id})) == (
        "ResourceNotFound")
    assert error(call(client, "DeleteCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "nope"})) == (
        "ResourceNotFound")


@pytest.mark.parametrize("mutate,code,fragment", [
    (lambda p: p.update(UserSig=gen_usersig(SDKAPPID, USERSIG_KEY, "someone", int(time.time()))),
     "InvalidParameter.UserSig", "another UserId"),
    (lambda p: p.update(UserSig=gen_usersig(SDKAPPID + 1, USERSIG_KEY, "rec_1", int(time.time()))),
     "InvalidParameter.UserSig", "another SdkAppId"),
    (lambda p: p.update(UserSig=gen_usersig(SDKAPPID, USERSIG_KEY, "rec_1", int(time.time()) - 7200, 3600)),
     "InvalidParameter.UserSig", "expired"),
    (lambda p: p.update(UserSig="garbage"), "InvalidParameter.UserSig", "malformed"),
    (lambda p: p["RecordParams"].update(MaxIdleTime=3), "InvalidParameter.OutOfRange", "MaxIdleTime"),
    (lambda p: p.pop("StorageParams"), "MissingParameter.StorageParams", "StorageParams"),
])
def test_create_validation(client: Any, launcher: FakeLauncher, mutate: Any, code: str, fragment: str) -> None:
    params = create_params()
    mutate(params)
    out = call(client, "CreateCloudRecording", params)
    assert error(out) == code and fragment in out["Error"]["Message"]
    assert launcher.launched == []


def test_concurrency_limit(client: Any) -> None:
    for i in range(3):  # the fixture's app allows 3
        assert "TaskId" in call(client, "CreateCloudRecording", create_params(user=f"rec_{i}"))
    assert error(call(client, "CreateCloudRecording", create_params(user="rec_4"))) == (
        "FailedOperation.RestrictedConcurrency")
    # a task that ends frees its slot
    store = wiring.task_store()
    assert store.active_count(SDKAPPID) == 3


def test_ended_task_frees_its_concurrency_slot(client: Any) -> None:
    ids = [call(client, "CreateCloudRecording", create_params(user=f"rec_{i}"))["TaskId"] for i in range(3)]
    assert wiring.task_store().finish(ids[0], int(time.time() * 1000))
    assert "TaskId" in call(client, "CreateCloudRecording", create_params(user="rec_4"))


def test_rate_limit_per_action(client: Any, registry: AppRegistry) -> None:
    app = registry.get_app(SDKAPPID)
    assert app is not None
    registry.put_app(App(**{**app.__dict__, "qps": 3}), SECRET_ID, SECRET_KEY)
    # stay inside one wall-clock second so the window is the same for all calls
    while time.time() % 1 > 0.5:
        time.sleep(0.05)
    codes = [call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "x"}).get("Error", {})
             .get("Code") for _ in range(5)]
    assert codes == ["ResourceNotFound"] * 3 + ["RequestLimitExceeded"] * 2
    # another action has its own budget
    # (signed a second earlier: the same bytes as a Describe of this second are that Describe's)
    assert error(call(client, "DeleteCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": "x"},
                      ts=int(time.time()) - 1)) == "ResourceNotFound"


def test_same_robot_in_same_room_stops_the_earlier_task(client: Any, launcher: FakeLauncher) -> None:
    first = call(client, "CreateCloudRecording", create_params())["TaskId"]
    changed = create_params()
    changed["RecordParams"]["MaxIdleTime"] = 60
    second = call(client, "CreateCloudRecording", changed)["TaskId"]
    assert second != first
    earlier = wiring.task_store().get(first)
    assert earlier is not None and earlier.desired == "stop" and earlier.leave_code == 101
    # another room or another robot user is independent
    other = call(client, "CreateCloudRecording", create_params(room="3561"))["TaskId"]
    assert wiring.task_store().get(second).desired == "run"  # type: ignore[union-attr]
    assert other not in (first, second)


def test_identical_create_retried_within_a_minute_returns_the_first_task(client: Any, launcher: FakeLauncher) -> None:
    params = create_params()
    first = call(client, "CreateCloudRecording", params)["TaskId"]
    again = call(client, "CreateCloudRecording", params)["TaskId"]
    assert again == first
    assert len(launcher.launched) == 1
    assert wiring.task_store().get(first).desired == "run"  # type: ignore[union-attr]


def test_launch_failure_is_an_internal_error_and_frees_the_slot(client: Any, launcher: FakeLauncher) -> None:
    launcher.fail = True
    params = create_params()
    out = call(client, "CreateCloudRecording", params)
    assert error(out) == "InternalError.CRInternalError"
    assert wiring.task_store().active_count(SDKAPPID) == 0
    launcher.fail = False
    assert "TaskId" in call(client, "CreateCloudRecording", params)  # the retry gets a new, running task


def _at(api: Any, action: str, params: dict[str, Any], ts: int, now: float) -> dict[str, Any]:
    """A request signed at `ts` and received at `now`."""
    from chalicelib.api import HttpRequest, handle

    body = json.dumps(params).encode()
    headers = {"host": HOST, "content-type": "application/json", "x-tc-action": action,
               "x-tc-version": "2019-07-22", "x-tc-timestamp": str(ts), "x-tc-region": "ap-guangzhou",
               "authorization": sign_tc3(SECRET_ID, SECRET_KEY, "POST", HOST, "application/json", body, ts)}
    out: dict[str, Any] = handle(api, HttpRequest("POST", headers, [], body), now).body["Response"]
    return out


@pytest.mark.parametrize("crowd", [0, limits.TRACE_SLOTS], ids=["alone", "after-a-full-window"])
def test_a_describe_signed_on_time_is_not_a_delete_later(registry: AppRegistry, launcher: FakeLauncher,
                                                         crowd: int) -> None:
    app = registry.get_app(SDKAPPID)
    assert app is not None
    registry.put_app(App(**{**app.__dict__, "qps": 100}), SECRET_ID, SECRET_KEY)
    api, ts = wiring.api(), int(time.time())
    task_id = _at(api, "CreateCloudRecording", create_params(), ts, ts + 0.1)["TaskId"]
    for i in range(crowd):  # other Describes fill the window the next one is counted in
        _at(api, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": f"other-{i}"}, ts, ts + 0.2)
    ref = {"SdkAppId": SDKAPPID, "TaskId": task_id}
    assert _at(api, "DescribeCloudRecording", ref, ts, ts + 0.3)["Status"] == "Idle"
    # captured and sent as a Delete once the grace is over: refused, and the task keeps running
    assert error(_at(api, "DeleteCloudRecording", ref, ts, ts + replay.SWAP_GRACE_S + 1.5)) == "RequestLimitExceeded"
    task = wiring.task_store().get(task_id)
    assert task is not None and task.desired == "run"
    # the SDK's own Describe-then-Delete of one second passes
    ts2 = ts + 10
    assert _at(api, "DescribeCloudRecording", ref, ts2, ts2 + 0.2)["Status"] == "Idle"
    assert _at(api, "DeleteCloudRecording", ref, ts2, ts2 + 0.9)["TaskId"] == task_id


def test_a_describe_refused_for_its_rate_is_not_a_delete_later(registry: AppRegistry,
                                                               launcher: FakeLauncher) -> None:
    api, ts = wiring.api(), int(time.time())
    task_id = _at(api, "CreateCloudRecording", create_params(), ts, ts + 0.1)["TaskId"]
    for i in range(20):  # the app's 20 Describes of this second
        _at(api, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": f"other-{i}"}, ts, ts + 0.2)
    ref = {"SdkAppId": SDKAPPID, "TaskId": task_id}
    assert error(_at(api, "DescribeCloudRecording", ref, ts, ts + 0.3)) == "RequestLimitExceeded"
    assert error(_at(api, "DeleteCloudRecording", ref, ts, ts + replay.SWAP_GRACE_S + 1.5)) == "RequestLimitExceeded"
    task = wiring.task_store().get(task_id)
    assert task is not None and task.desired == "run"


def test_resource_expired_hour(registry: AppRegistry, launcher: FakeLauncher) -> None:
    from chalicelib.api import HttpRequest, handle

    clock = FakeClock(time.time())
    api = wiring.api()
    api = type(api)(api.apps, api.limiter, type(api.recordings)(api.recordings.tasks, Direct(api.recordings.tasks, launcher),
                                                                 api.recordings.settings, clock), api.regions)

    def request(action: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params).encode()
        ts = int(clock.now)
        headers = {"host": HOST, "content-type": "application/json", "x-tc-action": action,
                   "x-tc-version": "2019-07-22", "x-tc-timestamp": str(ts), "x-tc-region": "ap-guangzhou",
                   "authorization": sign_tc3(SECRET_ID, SECRET_KEY, "POST", HOST, "application/json", body, ts)}
        return handle(api, HttpRequest("POST", headers, [], body), clock.now).body["Response"]

    task_id = request("CreateCloudRecording", create_params(ResourceExpiredHour=6))["TaskId"]
    clock.now += 6 * 3600 - 60
    assert request("DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id})["Status"] == "Idle"
    clock.now += 120
    out = request("DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id})
    assert error(out) == "ResourceNotFound" and "ResourceExpiredHour" in out["Error"]["Message"]
    task = wiring.task_store().get(task_id)
    assert task is not None and task.status != ENDED and task.desired == "run"  # the recording goes on


def test_wrong_path_and_method(client: Any) -> None:
    resp = client.http.post("/api", headers={"Content-Type": "application/json"}, body=b"{}")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.body)["Response"]["Error"]["Code"] == "InvalidParameter.UrlParamsError"
    resp = client.http.put("/", headers={"Content-Type": "application/json"}, body=b"{}")
    assert json.loads(resp.body)["Response"]["Error"]["Code"] == "UnsupportedProtocol"


def test_log_lines_carry_request_and_task_ids(client: Any) -> None:
    import logging

    import app as chalice_app

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    handler.setFormatter(chalice_app.logger.registered_formatter)
    target = logging.getLogger("cloudrec-api")
    target.addHandler(handler)
    try:
        task_id = call(client, "CreateCloudRecording", create_params())["TaskId"]
        lines.clear()
        reply = call(client, "DescribeCloudRecording", {"SdkAppId": SDKAPPID, "TaskId": task_id})
    finally:
        target.removeHandler(handler)
    assert lines, "the API logs structured JSON"
    for line in map(json.loads, lines):
        assert line["request_id"] == reply["RequestId"] and line["task_id"] == task_id
        assert line["action"] == "DescribeCloudRecording" and line["sdkappid"] == SDKAPPID


def _raw(client: Any, action: str, body: bytes, ts: int | None = None, extra: dict[str, str] | None = None,
         secret: tuple[str, str] = (SECRET_ID, SECRET_KEY), signed_body: bytes | None = None) -> dict[str, Any]:
    """A hand-made POST: the reply must still be API 3.0 JSON with a RequestId."""
    ts = int(time.time()) if ts is None else ts
    headers = {"Host": HOST, "Content-Type": "application/json", "X-TC-Action": action,
               "X-TC-Version": "2019-07-22", "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
               "Authorization": sign_tc3(secret[0], secret[1], "POST", HOST, "application/json",
                                         body if signed_body is None else signed_body, ts)}
    headers.update(extra or {})
    resp = client.http.post("/", headers=headers, body=body)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    out: dict[str, Any] = json.loads(resp.body)["Response"]
    assert out["RequestId"]
    return out


def test_oversized_body_is_refused_before_the_signature_is_checked(client: Any) -> None:
    out = _raw(client, "DescribeCloudRecording", b" " * 1_000_001, secret=("AKIDunknown", "x"))
    assert error(out) == "RequestSizeLimitExceeded"  # not SecretIdNotFound: no lookup, no hashing


def test_unsigned_payload_is_refused_for_a_body(client: Any) -> None:
    body = json.dumps(create_params()).encode()
    out = _raw(client, "CreateCloudRecording", body, signed_body=b"UNSIGNED-PAYLOAD",
               extra={"X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert error(out) == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(("body", "extra", "code"), [
    (b'{"SdkAppId": 1400000001, "TaskId": "\\ud800"}', {}, "InvalidParameter"),
    (b'{"SdkAppId": 1400000001, "TaskId": "t", "RecorderKey": "\\udfff"}', {}, "InvalidParameter"),
    (b"[" * 100_000 + b"]" * 100_000, {}, "InvalidParameter.BodyParamsError"),
    (b'{"SdkAppId": 1400000001, "TaskId": "t"}', {"X-TC-Timestamp": "9" * 400}, "InvalidParameter"),
    (b'{"SdkAppId": 1400000001, "TaskId": "t"}', {"X-TC-Timestamp": "\u0661\u0662"}, "InvalidParameter"),
], ids=["lone surrogate", "surrogate echoed", "deep nesting", "400-digit timestamp", "arabic digits"])
def test_hostile_describe_gets_a_client_error(client: Any, body: bytes, extra: dict[str, str], code: str) -> None:
    assert error(_raw(client, "DescribeCloudRecording", body, extra=extra)) == code


def test_malformed_get_keys_are_a_client_error(client: Any) -> None:
    query = "SdkAppId=1400000001&TaskId=t&X.%C2%B2=1&Y.0=a&Y.x=b"
    deep = "SdkAppId=1400000001&TaskId=t&" + ".".join(["a"] * 50) + "=1"
    for q in (query, deep):
        ts = int(time.time())
        ctype = "application/x-www-form-urlencoded"
        headers = {"Host": HOST, "Content-Type": ctype, "X-TC-Action": "DescribeCloudRecording",
                   "X-TC-Version": "2019-07-22", "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
                   "Authorization": sign_tc3(SECRET_ID, SECRET_KEY, "GET", HOST, ctype, b"", ts, q)}
        out = json.loads(client.http.get("/?" + q, headers=headers).body)["Response"]
        assert error(out) in ("ResourceNotFound", "InvalidParameter.UrlParamsError", "AuthFailure.SignatureFailure")


@pytest.mark.parametrize(("path", "value", "code"), [
    (("StorageParams",), {"CloudVod": {"TencentVod": {"ExpireTime": 10**30}}}, "InvalidParameter.OutOfRange"),
    (("StorageParams", "CloudStorage", "Region"), "../../evil", "InvalidParameter"),
    (("StorageParams", "CloudStorage", "Region"), "ap-shanghai", "InvalidParameter"),  # not an AWS region
    (("StorageParams", "CloudStorage", "AccessKey"), "k" * 5000, "InvalidParameter.OutOfRange"),
    (("StorageParams", "CloudStorage", "FileNamePrefix"), ["p"] * 9, "InvalidParameter.OutOfRange"),
    (("RecordParams", "SubscribeStreamUserIds"), {"SubscribeAudioUserIds": ["u" * 65]}, "InvalidParameter"),
    (("UserSig",), "eJ" + "A" * 5000, "InvalidParameter.OutOfRange"),
])
def test_unbounded_fields_are_bounded(client: Any, launcher: FakeLauncher, path: tuple[str, ...], value: Any,
                                      code: str) -> None:
    params = create_params()
    node = params
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert error(call(client, "CreateCloudRecording", params)) == code
    assert launcher.launched == []


def test_replayed_or_swapped_signatures_are_refused(client: Any, launcher: FakeLauncher) -> None:
    create = json.dumps(create_params()).encode()
    ts = int(time.time())
    task_id = _raw(client, "CreateCloudRecording", create, ts=ts)["TaskId"]
    # the same Create again (a captured one, or a retry within the second) gets its first answer
    assert _raw(client, "CreateCloudRecording", create, ts=ts)["TaskId"] == task_id
    assert len(launcher.launched) == 1
    ref = json.dumps({"SdkAppId": SDKAPPID, "TaskId": task_id}).encode()
    captured = ts - replay.SWAP_GRACE_S - 2  # a Describe captured a few seconds ago
    assert _raw(client, "DescribeCloudRecording", ref, ts=captured)["Status"] == "Idle"
    # a captured Describe is not a Delete, and the task keeps running
    assert error(_raw(client, "DeleteCloudRecording", ref, ts=captured)) == "RequestLimitExceeded"
    assert wiring.task_store().get(task_id).desired == "run"  # type: ignore[union-attr]
    assert _raw(client, "DescribeCloudRecording", ref, ts=captured)["Status"] == "Idle"  # it was a Describe
    # the SDK's own Describe-then-Delete within one second is byte-identical: it passes, once
    assert _raw(client, "DescribeCloudRecording", ref, ts=ts)["Status"] == "Idle"
    assert _raw(client, "DeleteCloudRecording", ref, ts=ts)["TaskId"] == task_id
    assert error(_raw(client, "DeleteCloudRecording", ref, ts=ts)) == "RequestLimitExceeded"
