"""TC3-HMAC-SHA256 verification against the official SDK's own signer and Tencent's vector."""

from __future__ import annotations

import hashlib
import json

import pytest
from tencentcloud.common.sign import Sign

from chalicelib.errors import AuthError
from chalicelib.signing import (
    SignedRequest,
    callback_sign,
    canonical_request,
    sign_tc3,
    signature,
    verify_tc3,
)

KEYS = {"AKIDtest": "secretkey"}
NOW = 1795614686  # 2026-11-25


def _request(auth: str, body: bytes, ts: int = NOW, **headers: str) -> SignedRequest:
    base = {"content-type": "application/json", "host": "127.0.0.1:8000", "x-tc-timestamp": str(ts),
            "authorization": auth}
    base.update(headers)
    return SignedRequest("POST", base, "", body)


def test_tencent_doc_vector_canonical_request_hash() -> None:
    # Tencent's "Signature v3" example (CVM DescribeInstances) signs content-type;host;x-tc-action
    # and canonicalises header values in lower case.
    payload = json.dumps({"Limit": 1, "Filters": [{"Values": ["未命名"], "Name": "instance-name"}]}).encode()
    assert hashlib.sha256(payload).hexdigest() == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    req = SignedRequest("POST", {"content-type": "application/json; charset=utf-8",
                                 "host": "cvm.tencentcloudapi.com", "x-tc-action": "DescribeInstances"}, "", payload)
    canonical = canonical_request(req, ("content-type", "host", "x-tc-action"), lower_values=True)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84")


def test_signature_matches_the_official_sdk_signer() -> None:
    canonical = "POST\n/\n\ncontent-type:application/json\nhost:h\n\ncontent-type;host\n" + "0" * 64
    string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(NOW), "2026-11-25/trtc/tc3_request",
                                hashlib.sha256(canonical.encode()).hexdigest()])
    ours = signature("secretkey", str(NOW), "2026-11-25", "trtc", canonical)
    assert ours == Sign.sign_tc3("secretkey", "2026-11-25", "trtc", string_to_sign)


def test_sign_then_verify_roundtrip() -> None:
    body = b'{"SdkAppId": 1}'
    auth = sign_tc3("AKIDtest", "secretkey", "POST", "127.0.0.1:8000", "application/json", body, NOW)
    assert verify_tc3(_request(auth, body), KEYS.get, NOW + 10) == "AKIDtest"


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamp_outside_five_minutes_is_expired(skew: int) -> None:
    body = b"{}"
    auth = sign_tc3("AKIDtest", "secretkey", "POST", "127.0.0.1:8000", "application/json", body, NOW)
    with pytest.raises(AuthError) as exc:
        verify_tc3(_request(auth, body), KEYS.get, NOW + skew)
    assert exc.value.code == "AuthFailure.SignatureExpire"


def test_unknown_secret_id() -> None:
    auth = sign_tc3("AKIDother", "secretkey", "POST", "127.0.0.1:8000", "application/json", b"{}", NOW)
    with pytest.raises(AuthError) as exc:
        verify_tc3(_request(auth, b"{}"), KEYS.get, NOW)
    assert exc.value.code == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize("tamper", ["body", "key", "host", "date"])
def test_tampering_fails_the_signature(tamper: str) -> None:
    body = b'{"SdkAppId": 1}'
    auth = sign_tc3("AKIDtest", "wrong" if tamper == "key" else "secretkey", "POST", "127.0.0.1:8000",
                    "application/json", body, NOW)
    req = _request(auth, b'{"SdkAppId": 2}' if tamper == "body" else body,
                   **({"host": "127.0.0.1:8001"} if tamper == "host" else {}))
    if tamper == "date":
        req = _request(auth.replace("2026-11-25", "2026-11-24"), body)
    with pytest.raises(AuthError) as exc:
        verify_tc3(req, KEYS.get, NOW)
    assert exc.value.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("auth", ["", "Basic abc", "TC3-HMAC-SHA256 Credential=x"])
def test_malformed_authorization(auth: str) -> None:
    with pytest.raises(AuthError) as exc:
        verify_tc3(_request(auth, b"{}"), KEYS.get, NOW)
    assert exc.value.code == "AuthFailure.InvalidAuthorization"


def test_extra_signed_headers_are_honoured() -> None:
    body = b"{}"
    req = _request("", body, **{"x-tc-action": "DescribeCloudRecording"})
    signed = ("content-type", "host", "x-tc-action")
    sig = signature("secretkey", str(NOW), "2026-11-25", "trtc", canonical_request(req, signed, True))
    auth = (f"TC3-HMAC-SHA256 Credential=AKIDtest/2026-11-25/trtc/tc3_request, "
            f"SignedHeaders=content-type;host;x-tc-action, Signature={sig}")
    assert verify_tc3(_request(auth, body, **{"x-tc-action": "DescribeCloudRecording"}), KEYS.get, NOW)


def test_callback_sign_doc_vector() -> None:
    body = ("{\n\t\"EventGroupId\":\t2,\n\t\"EventType\":\t204,\n\t\"CallbackTs\":\t1664209748188,\n\t"
            "\"EventInfo\":\t{\n\t\t\"RoomId\":\t8489,\n\t\t\"EventTs\":\t1664209748,\n\t\t\"EventMsTs\":\t"
            "1664209748180,\n\t\t\"UserId\":\t\"user_85034614\",\n\t\t\"Reason\":\t0\n\t}\n}")
    assert callback_sign("123654", body.encode()) == "kkoFeO3Oh2ZHnjtg8tEAQhtXK16/KI05W3BQff8IvGA="
