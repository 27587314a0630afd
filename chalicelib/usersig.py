"""TLSSigAPIv2 UserSig: generation (tools, tests) and verification (the API).

A UserSig is zlib-compressed JSON whose `TLS.sig` is an HMAC-SHA256 over a text built
from the identifier, SdkAppId, time and expiry, base64-encoded with `+/=` mapped to `*-_`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from typing import Any

from chalicelib.errors import UserSigError

DEFAULT_EXPIRE_S = 180 * 86400
# A real UserSig is ~200 characters and inflates to ~250 bytes (more with a PrivateMapKey
# userbuf). The caps keep a crafted one from costing more than a few KB: zlib inflates
# ~1000:1, so 130 KB of UserSig would otherwise become 100 MB.
MAX_USERSIG = 4096
MAX_INFLATED = 16 * 1024
_TO_URL = str.maketrans("+/=", "*-_")
_FROM_URL = str.maketrans("*-_", "+/=")


def _content(identifier: str, sdkappid: Any, time_: Any, expire: Any, userbuf: str | None) -> str:
    text = (
        f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{time_}\nTLS.expire:{expire}\n"
    )
    if userbuf is not None:
        text += f"TLS.userbuf:{userbuf}\n"
    return text


def _mac(key: str, content: str) -> str:
    digest = hmac.new(key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def gen_usersig(sdkappid: int, key: str, identifier: str, now: int, expire: int = DEFAULT_EXPIRE_S) -> str:
    """Return the UserSig TLSSigAPIv2 would issue for `identifier` at Unix time `now`."""
    doc = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": sdkappid,
        "TLS.expire": expire,
        "TLS.time": now,
        "TLS.sig": _mac(key, _content(identifier, sdkappid, now, expire, None)),
    }
    packed = zlib.compress(json.dumps(doc).encode("utf-8"))
    return base64.b64encode(packed).decode().translate(_TO_URL)


def _inflate(packed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(packed, MAX_INFLATED)
    if inflater.unconsumed_tail:
        raise UserSigError(f"UserSig is malformed: it inflates to more than {MAX_INFLATED} bytes.")
    if not inflater.eof:
        raise zlib.error("truncated")
    return text


def _decode(usersig: str) -> dict[str, Any]:
    if len(usersig) > MAX_USERSIG:
        raise UserSigError(f"UserSig is malformed: it is longer than {MAX_USERSIG} characters.")
    try:
        packed = base64.b64decode(usersig.translate(_FROM_URL), validate=True)
        doc = json.loads(_inflate(packed))
    except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError, RecursionError):
        raise UserSigError("UserSig is malformed: it is not a TLSSigAPIv2 signature.") from None
    if not isinstance(doc, dict):
        raise UserSigError("UserSig is malformed: it is not a TLSSigAPIv2 signature.")
    return doc


def verify_usersig(usersig: str, sdkappid: int, key: str, identifier: str, now: float) -> int:
    """Return the UserSig's expiry (Unix s); raise UserSigError unless `usersig` was made
    with `key` for this user and app and has not expired."""
    doc = _decode(usersig)
    try:
        sig_identifier = doc["TLS.identifier"]
        sig_app = doc["TLS.sdkappid"]
        sig_time = doc["TLS.time"]
        sig_expire = doc["TLS.expire"]
        sig = doc["TLS.sig"]
        issued, lifetime = int(sig_time), int(sig_expire)
    except (KeyError, TypeError, ValueError):
        raise UserSigError("UserSig is malformed: a TLS field is missing or not a number.") from None
    userbuf = doc.get("TLS.userbuf")
    try:
        expected = _mac(key, _content(str(sig_identifier), sig_app, sig_time, sig_expire, userbuf))
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape in the JSON
        raise UserSigError("UserSig is malformed: a TLS field is not text.") from None
    if not isinstance(sig, str) or not hmac.compare_digest(expected, sig):
        raise UserSigError("UserSig was not signed with this application's key.")
    if str(sig_identifier) != identifier:
        raise UserSigError(f"UserSig was issued for another UserId, not for {identifier}.")
    if str(sig_app) != str(sdkappid):
        raise UserSigError(f"UserSig was issued for another SdkAppId, not for {sdkappid}.")
    if now >= issued + lifetime:
        raise UserSigError("UserSig has expired; issue a new one that outlives the task.")
    return issued + lifetime
