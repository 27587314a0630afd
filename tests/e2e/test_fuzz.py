"""Hostile requests against the real local stack: every answer is HTTP 200 + API 3.0 JSON with
a RequestId and a TRTC error code, fast, with no traceback in the API log."""

from __future__ import annotations

import collections
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.signing import sign_tc3
from tests.support.sdk import create_request, delete, describe
from tests.support.stack import SDKAPPID, SECRET_ID, SECRET_KEY, LocalStack

SPEC = Path(__file__).resolve().parents[3] / "shared/spec/trtc-api.md"
ACTIONS = ("CreateCloudRecording", "DescribeCloudRecording", "ModifyCloudRecording", "DeleteCloudRecording")
MAX_S = 2.0


def allowed_codes() -> set[str]:
    """Every error code the spec lists (§3), from TRTC's errorcodes and the API 3.0 common codes."""
    text = SPEC.read_text() if SPEC.exists() else Path("/work/shared/spec/trtc-api.md").read_text()
    section = text[text.index("## 3. Error codes"):text.index("## 4. ")]
    return set(re.findall(r"`([A-Z][A-Za-z]+(?:\.[A-Za-z]+)*)`", section))


class Fuzzer:
    def __init__(self, stack: LocalStack) -> None:
        self.host = stack.api_endpoint
        self.codes: collections.Counter[str] = collections.Counter()
        self.bad: list[str] = []
        self.allowed = allowed_codes()
        self.sessions: dict[int, requests.Session] = {}

    def _session(self) -> requests.Session:
        import threading

        return self.sessions.setdefault(threading.get_ident(), requests.Session())

    def signed(self, action: str, body: bytes, ts: int | None = None, headers: dict[str, str] | None = None,
               key: str = SECRET_KEY, sign_body: bytes | None = None) -> None:
        ts = int(time.time()) if ts is None else ts
        h = {"Content-Type": "application/json", "X-TC-Action": action, "X-TC-Version": "2019-07-22",
             "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
             "Authorization": sign_tc3(SECRET_ID, key, "POST", self.host, "application/json",
                                       body if sign_body is None else sign_body, ts)}
        h.update(headers or {})
        self.send("POST", body, {k: v for k, v in h.items() if v is not None})

    def send(self, method: str, body: bytes, headers: dict[str, str], query: str = "") -> None:
        started = time.perf_counter()
        try:
            resp = self._session().request(method, f"http://{self.host}/{query}", data=body, headers=headers,
                                           timeout=10)
        except requests.RequestException as exc:
            self.bad.append(f"no answer: {exc!r}")
            self.codes["(no answer)"] += 1
            return
        elapsed = time.perf_counter() - started
        try:
            out = resp.json()["Response"]
            code = out.get("Error", {}).get("Code", "(success)")
            ok = resp.status_code == 200 and resp.headers.get("Content-Type") == "application/json" and \
                bool(out["RequestId"]) and (code == "(success)" or code in self.allowed) and \
                not code.startswith("InternalError")
        except (ValueError, KeyError, TypeError, AttributeError):
            code, ok = "(not API 3.0)", False
        self.codes[code] += 1
        if not ok or elapsed > MAX_S:
            self.bad.append(f"{code} {resp.status_code} {elapsed:.2f}s {method} /{query[:120]} body={body[:120]!r} "
                            f"headers={headers} answer={resp.content[:200]!r}")


# a schema of the four actions' fields, with hostile values mixed in
_hostile_text = st.one_of(
    st.text(max_size=40), st.just("\ud800"), st.just("x" * 5000), st.just("../../etc"), st.just(""))
_hostile_int = st.one_of(st.integers(-10, 10**4), st.integers(min_value=2**31), st.just(10**30),
                         st.just(-(2**70)))
_leaf = st.one_of(_hostile_text, _hostile_int, st.booleans(), st.none(), st.floats(allow_nan=False))
_json = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                    max_size=4), max_leaves=12)
_value = st.one_of(_json, _hostile_text, _hostile_int)
_fields = {
    "SdkAppId": st.one_of(st.just(SDKAPPID), _hostile_int, _hostile_text),
    "TaskId": _value, "RoomId": _value, "UserId": _value, "UserSig": _value, "RoomIdType": _value,
    "RecordParams": st.one_of(st.fixed_dictionaries({}, optional={
        "RecordMode": _value, "MaxIdleTime": _hostile_int, "StreamType": _value,
        "SubscribeStreamUserIds": st.fixed_dictionaries({}, optional={
            "SubscribeAudioUserIds": st.lists(_hostile_text, max_size=40)})}), _value),
    "StorageParams": st.one_of(st.fixed_dictionaries({}, optional={
        "CloudStorage": st.fixed_dictionaries({}, optional={
            "Vendor": _value, "Region": _hostile_text, "Bucket": _hostile_text, "AccessKey": _hostile_text,
            "SecretKey": _hostile_text, "FileNamePrefix": st.lists(_hostile_text, max_size=20)}),
        "CloudVod": st.fixed_dictionaries({}, optional={"TencentVod": st.fixed_dictionaries({}, optional={
            "ExpireTime": _hostile_int, "ClassId": _hostile_int, "Procedure": _hostile_text})})}), _value),
    "MixLayoutParams": st.one_of(st.fixed_dictionaries({}, optional={
        "MixLayoutMode": _value, "MixLayoutList": st.lists(st.dictionaries(
            st.sampled_from(["Top", "Left", "Width", "Height", "UserId", "ImageLayer"]), _value), max_size=30),
        "BackgroundImageUrl": _hostile_text}), _value),
    "RecorderKey": _value,
}
_body = st.fixed_dictionaries({}, optional=_fields)


def _encode(params: Any) -> bytes:
    return json.dumps(params).encode()  # lone surrogates go out as \ud800 escapes, as a client can send


RAW_BODIES = [b"", b"{", b"null", b"[]", b'"x"', b"1e999", b"{" * 5000, b"[" * 200_000, b"\xff\xfe",
              b'{"SdkAppId": 1e400}', b'{"SdkAppId": ' + b"9" * 5000 + b"}", b" " * 1_100_000,
              b'{"SdkAppId": 1400000001, "TaskId": "\\udc00"}']


def raw_cases(f: Fuzzer) -> list[tuple[str, bytes, dict[str, str], str]]:
    """(method, body, headers, query) for malformed HTTP: bad JSON, sizes, headers, signatures."""
    ts = int(time.time())
    good = json.dumps({"SdkAppId": SDKAPPID, "TaskId": "t"}).encode()
    base = {"Content-Type": "application/json", "X-TC-Action": "DescribeCloudRecording",
            "X-TC-Version": "2019-07-22", "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
            "Authorization": sign_tc3(SECRET_ID, SECRET_KEY, "POST", f.host, "application/json", good, ts)}
    cases: list[tuple[str, bytes, dict[str, str], str]] = []
    for body in RAW_BODIES:
        auth = sign_tc3(SECRET_ID, SECRET_KEY, "POST", f.host, "application/json", body, ts)
        cases.append(("POST", body, {**base, "Authorization": auth}, ""))
    for name in base:
        cases.append(("POST", good, {k: v for k, v in base.items() if k != name}, ""))
        for value in ("", "x" * 8000, "\u00ff", "9" * 400, "TC3-HMAC-SHA256 Credential=" + "A" * 5000):
            cases.append(("POST", good, {**base, name: value}, ""))
    for method in ("PUT", "DELETE", "PATCH"):
        cases.append((method, good, base, ""))
    for query in ("?X.%C2%B2=1", "?" + ".".join(["a"] * 200) + "=1", "?" + "&".join(f"k{i}=v" for i in range(2000)),
                  "?A=1&A.B=2&A.0=3", "?%ff%fe=1", "?SdkAppId=1400000001&TaskId=%ED%A0%80"):
        cases.append(("GET", b"", {**base, "Content-Type": "application/x-www-form-urlencoded"}, query))
    for old in (ts - 301, ts + 301, 0, 10**12):
        cases.append(("POST", good, {**base, "X-TC-Timestamp": str(old), "Authorization": sign_tc3(
            SECRET_ID, SECRET_KEY, "POST", f.host, "application/json", good, ts)}, ""))
    cases.append(("POST", good, {**base, "Authorization": sign_tc3(SECRET_ID, "wrong", "POST", f.host,
                                                                    "application/json", good, ts)}, ""))
    cases.append(("POST", good, {**base, "Authorization": sign_tc3("AKIDnobody", "x", "POST", f.host,
                                                                    "application/json", good, ts)}, ""))
    cases.append(("POST", good, {**base, "X-TC-Content-SHA256": "UNSIGNED-PAYLOAD"}, ""))
    # action swap and replay of one captured Describe
    for action in ACTIONS + ACTIONS:
        cases.append(("POST", good, {**base, "X-TC-Action": action}, ""))
    return cases


def test_fuzz(stack: LocalStack) -> None:
    f = Fuzzer(stack)
    log = stack.run_dir / "logs" / "api.log"
    log_start = log.stat().st_size if log.exists() else 0

    @settings(max_examples=3000, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(action=st.sampled_from(ACTIONS), params=_body)
    def well_signed(action: str, params: dict[str, Any]) -> None:
        f.signed(action, _encode(params))

    well_signed()
    cases = raw_cases(f)
    rounds = max(1, 2100 // len(cases))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda c: f.send(*c), cases * rounds))
    sent = sum(f.codes.values())
    print(f"\nfuzz: {sent} requests")
    for code, n in f.codes.most_common():
        print(f"  {n:6d}  {code}")
    assert sent >= 5000
    assert not f.bad, "\n".join(f.bad[:20])
    tail = log.read_bytes()[log_start:].decode(errors="replace") if log.exists() else ""
    assert "Traceback" not in tail
    # the stack still works: a normal Create, Describe and Delete
    task_id = stack.client().CreateCloudRecording(create_request("rec_after_fuzz", room="9077")).TaskId
    assert describe(stack, task_id).Status in ("Idle", "InProgress")
    time.sleep(1.1)  # a fresh second: the Delete's signature must differ from the Describe's
    assert delete(stack, task_id).TaskId == task_id
