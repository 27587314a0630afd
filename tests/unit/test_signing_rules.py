"""What the official clients other than the Python SDK sign, and that the API accepts it.

The Node.js and Java SDKs are re-implemented here from their sources' rules (the rules are
stated in chalicelib/signing.py); the HMAC chain is the official Python SDK's own `Sign`, which
takes any service name. A request goes through what the edge does (the query parsed and
re-encoded) before `verify_tc3` sees it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from tencentcloud.common.sign import Sign

from chalicelib.errors import AuthError
from chalicelib.signing import SignedRequest, query_encodings, signed_hosts, utc_date, verify_tc3

KEYS = {"AKIDtest": "secretkey"}
NOW = 1795614686  # 2026-11-25
TASK = "k2V0+aGVyZS1pcy1hLXRhc2staWQtb2YtNDQtY2hhcnM."
DESCRIBE = {"SdkAppId": 1400000001, "TaskId": TASK}
MODIFY = {"SdkAppId": 1400000001, "TaskId": TASK,
          "SubscribeStreamUserIds": {"SubscribeAudioUserIds": ["alice", "bob_2"]}}
NODE_UNRESERVED = "-_.!~*'()"  # Node's querystring.escape leaves these as they are
ENDPOINTS = ["127.0.0.1:8000", "trtc.cloudrec.test:8000", "recording.cloudrec.test:8000", "cloudrec:8000",
             "recording.example.com"]


def _authorization(secret_id: str, secret_key: str, service: str, ts: int, canonical: str,
                   signed_headers: str = "content-type;host") -> str:
    date = utc_date(ts)
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(ts), scope, hashlib.sha256(canonical.encode()).hexdigest()])
    sig = Sign.sign_tc3(secret_key, date, service, to_sign)
    return f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={sig}"


def _canonical(method: str, query: str, content_type: str, host: str, payload: bytes) -> str:
    return "\n".join([method, "/", query, f"content-type:{content_type}\nhost:{host}\n", "content-type;host",
                      hashlib.sha256(payload).hexdigest()])


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """`RecordParams.RecordMode=1`, `X.List.0=a`: how every SDK flattens a GET request."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        items = enumerate(value) if isinstance(value, list) else value.items() if isinstance(value, dict) else None
        if items is None:
            out.append((prefix + key, str(value)))
        else:
            out.extend(_flatten({str(k): v for k, v in items}, f"{prefix}{key}."))
    return out


def _escape(value: str, unreserved: str, space: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in unreserved) else space if ch == " "
                   else "".join(f"%{b:02X}" for b in ch.encode()) for ch in value)


def java_sdk(endpoint: str, method: str, params: dict[str, Any], secret: tuple[str, str] = ("AKIDtest", "secretkey"),
             ts: int = NOW) -> tuple[dict[str, str], str, bytes]:
    """Headers, query and body as tencentcloud-sdk-java (AbstractClient.doRequestWithTC3) sends them.

    Service: endpoint.split(".")[0]. Host: the endpoint verbatim, sent and signed (okhttp keeps a
    Host header the caller set). POST: compact JSON as "application/json; charset=utf-8", no
    query. GET: "application/x-www-form-urlencoded", empty payload, query key=URLEncoder(value)
    joined by "&", sent as signed.
    """
    if method == "POST":
        ctype, query, body = "application/json; charset=utf-8", "", json.dumps(params, separators=(",", ":")).encode()
    else:
        ctype, body = "application/x-www-form-urlencoded", b""
        query = "&".join(f"{k}={_escape(v, '.-*_', '+')}" for k, v in _flatten(params))
    canonical = _canonical(method, query, ctype, endpoint, body)
    auth = _authorization(*secret, endpoint.split(".")[0], ts, canonical)
    return {"host": endpoint, "content-type": ctype, "x-tc-timestamp": str(ts), "authorization": auth}, query, body


def node_sdk(endpoint: str, method: str, params: dict[str, Any], secret: tuple[str, str] = ("AKIDtest", "secretkey"),
             ts: int = NOW) -> tuple[dict[str, str], str, bytes]:
    """Headers, query and body as tencentcloud-sdk-nodejs (HttpConnection.doRequestWithSign3,
    Sign.sign3) sends them.

    Service: endpoint.split(".")[0]. Host header: new URL(url).host (with the port); signed host:
    new URL(url).hostname (without it). POST: JSON.stringify as "application/json", no query.
    GET: querystring.stringify (space as %20, !~*'() unescaped), empty payload.
    """
    url = urlsplit(f"http://{endpoint}/")
    assert url.hostname is not None
    host = url.hostname if url.port in (None, 80) else f"{url.hostname}:{url.port}"
    if method == "POST":
        ctype, query, body = "application/json", "", json.dumps(params, separators=(",", ":")).encode()
    else:
        ctype, body = "application/x-www-form-urlencoded", b""
        query = "&".join(f"{_escape(k, NODE_UNRESERVED, '%20')}={_escape(v, NODE_UNRESERVED, '%20')}"
                         for k, v in _flatten(params))
    canonical = _canonical(method, query, ctype, url.hostname, body)
    auth = _authorization(*secret, endpoint.split(".")[0], ts, canonical)
    return {"host": host, "content-type": ctype, "x-tc-timestamp": str(ts), "authorization": auth}, query, body


def received(method: str, sent: tuple[dict[str, str], str, bytes]) -> SignedRequest:
    """The request as the API sees it: the edge parses the query, api.py encodes it again as
    each client would."""
    headers, query, body = sent
    queries = query_encodings(parse_qsl(query, keep_blank_values=True))
    return SignedRequest(method, headers, queries[0], body, other_queries=queries[1:])


def _refused(req: SignedRequest, **kw: Any) -> str:
    with pytest.raises(AuthError) as exc:
        verify_tc3(req, KEYS.get, NOW, **kw)
    return exc.value.code


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("client", [java_sdk, node_sdk])
def test_node_and_java_sdk_requests_verify(client: Any, endpoint: str, method: str) -> None:
    for params in (DESCRIBE, MODIFY):
        assert verify_tc3(received(method, client(endpoint, method, params)), KEYS.get, NOW + 5) == "AKIDtest"


# a Create's UserSig always holds "*" (TLSSigAPIv2's base64 with "*-_"), a RoomId or UserId may
# hold any of the characters the encoders disagree on
CREATE = {"SdkAppId": 1400000001, "RoomId": "room (1)!", "RoomIdType": 1, "UserId": "rec~1 'a'",
          "UserSig": "eJw1jl0LgjAYhf*-Bc*_wg1K_", "RecordParams": {"RecordMode": 1}}


@pytest.mark.parametrize("client", [java_sdk, node_sdk])
def test_a_get_with_the_characters_the_encoders_disagree_on_verifies(client: Any) -> None:
    sent = client("127.0.0.1:8000", "GET", CREATE)
    python_encoded = urlencode(_flatten(CREATE))
    assert sent[1] != python_encoded  # the client encoded it otherwise than the edge's default would
    assert verify_tc3(received("GET", sent), KEYS.get, NOW) == "AKIDtest"
    # the pairs are what is signed: another value under any encoding fails
    headers, query, body = sent
    assert _refused(received("GET", (headers, query.replace("room", "r00m"), body))) == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("client", [java_sdk, node_sdk])
def test_pinned_to_trtc_as_before_they_are_refused(client: Any) -> None:
    # pinned to the Python SDK's "trtc", as the API was: AuthFailure.SignatureFailure
    sent = client("127.0.0.1:8000", "POST", DESCRIBE)
    assert _refused(received("POST", sent), service="trtc") == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("client", [java_sdk, node_sdk])
def test_a_wrong_key_or_a_changed_body_still_fails(client: Any) -> None:
    wrong = client("127.0.0.1:8000", "POST", DESCRIBE, secret=("AKIDtest", "not-the-key"))
    assert _refused(received("POST", wrong)) == "AuthFailure.SignatureFailure"
    headers, query, _ = client("127.0.0.1:8000", "POST", DESCRIBE)
    other_body = json.dumps({**DESCRIBE, "TaskId": "another"}, separators=(",", ":")).encode()
    assert _refused(received("POST", (headers, query, other_body))) == "AuthFailure.SignatureFailure"
    late = client("127.0.0.1:8000", "POST", DESCRIBE, ts=NOW - 301)
    assert _refused(received("POST", late)) == "AuthFailure.SignatureExpire"


def test_the_signature_holds_exactly_the_label_in_the_scope() -> None:
    headers, query, body = node_sdk("recording.cloudrec.test:8000", "POST", DESCRIBE)
    for label in ("trtc", "127", "Recording", "recordin"):
        swapped = headers["authorization"].replace("/recording/", f"/{label}/")
        assert _refused(received("POST", ({**headers, "authorization": swapped}, query, body))) == (
            "AuthFailure.SignatureFailure"), label


def test_a_pinned_service_takes_no_other_label() -> None:
    # the VOD stand-in pins "vod": a request signed for "trtc" is not one for it
    body = b"{}"
    canonical = _canonical("POST", "", "application/json", "127.0.0.1:8000", body)
    headers = {"host": "127.0.0.1:8000", "content-type": "application/json", "x-tc-timestamp": str(NOW)}
    for service, code in (("vod", None), ("trtc", "AuthFailure.SignatureFailure")):
        req = SignedRequest("POST", {**headers, "authorization": _authorization(
            "AKIDtest", "secretkey", service, NOW, canonical)}, "", body)
        if code is None:
            assert verify_tc3(req, KEYS.get, NOW, service="vod") == "AKIDtest"
        else:
            assert _refused(req, service="vod") == code


@pytest.mark.parametrize("label", ["a" * 64, "tr tc", "tr%63", "трtc", "-trtc", "trtc:123456", "trtc:", ":80",
                                   "trtc.cloudrec", "trtc;x"])
def test_junk_service_labels_are_invalid_authorization(label: str) -> None:
    body = b"{}"
    canonical = _canonical("POST", "", "application/json", "127.0.0.1:8000", body)
    headers = {"host": "127.0.0.1:8000", "content-type": "application/json", "x-tc-timestamp": str(NOW),
               "authorization": _authorization("AKIDtest", "secretkey", label, NOW, canonical)}
    assert _refused(SignedRequest("POST", headers, "", body)) == "AuthFailure.InvalidAuthorization"


@pytest.mark.parametrize(("signed_host", "host_header", "accepted"), [
    ("127.0.0.1:8000", "127.0.0.1:8000", True),
    ("127.0.0.1", "127.0.0.1:8000", True),  # the Node.js SDK
    ("trtc.cloudrec.test", "trtc.cloudrec.test:8000", True),
    ("127.0.0.1:8001", "127.0.0.1:8000", False),  # another port
    ("127.0.0.1:8000", "127.0.0.1", False),  # a port the request did not carry
    ("127.0.0.2", "127.0.0.1:8000", False),
    ("recording.cloudrec.test", "trtc.cloudrec.test:8000", False),
    ("trtc.cloudrec", "trtc.cloudrec.test:8000", False),
])
def test_the_signed_host_is_the_received_one_with_or_without_its_port(
        signed_host: str, host_header: str, accepted: bool) -> None:
    body = json.dumps(DESCRIBE).encode()
    canonical = _canonical("POST", "", "application/json", signed_host, body)
    headers = {"host": host_header, "content-type": "application/json", "x-tc-timestamp": str(NOW),
               "authorization": _authorization("AKIDtest", "secretkey", "trtc", NOW, canonical)}
    req = SignedRequest("POST", headers, "", body)
    if accepted:
        assert verify_tc3(req, KEYS.get, NOW) == "AKIDtest"
    else:
        assert _refused(req) == "AuthFailure.SignatureFailure"


def test_at_most_two_hosts_are_tried() -> None:
    assert signed_hosts("127.0.0.1:8000") == ("127.0.0.1:8000", "127.0.0.1")
    assert signed_hosts(" trtc.cloudrec.test ") == ("trtc.cloudrec.test",)
    assert signed_hosts("[::1]:8000") == ("[::1]:8000", "[::1]")
    assert signed_hosts("[::1]") == ("[::1]",)
