"""TC3-HMAC-SHA256 request signatures (API 3.0) and the callback `Sign` header.

Pure functions: the API verifies requests with `verify_tc3`, tests and the benchmark
sign with `sign_tc3`, the callback sender signs bodies with `callback_sign`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.errors import AuthError, RequestError

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "trtc"  # what the Python SDK and tccli put in the credential scope
MAX_CLOCK_SKEW_S = 300
MAX_AUTHORIZATION = 1024  # the SDK's is ~200 characters
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# What the official clients sign (read from their sources), and so what verification accepts:
# - service in the credential scope: the Python SDK and tccli say "trtc"; the Node.js and Java
#   SDKs take endpoint.split(".")[0]: "127" for 127.0.0.1:8000, "recording" for
#   recording.example.com:8000, "cloudrec:8000" for a one-label host. Any label passes; the
#   signature must verify with exactly the label in the scope (it is in the string to sign and
#   in the key). A label is a DNS label with an optional :port: junk is InvalidAuthorization.
# - host: the Python SDK, tccli and the Java SDK sign the Host header they send (the endpoint
#   with its port). The Node.js SDK sends Host with the port but signs the URL's hostname
#   without it. So the host is tried as received and, when it ends in :port, without the port.
# - content-type: the value sent ("application/json" from Python and Node.js, "application/json;
#   charset=utf-8" from Java, "application/x-www-form-urlencoded" for GET), taken as received.
# - GET query: each client signs its query as it encodes it, and the edge (API Gateway, Chalice)
#   hands on only the parsed pairs. They are encoded again the ways the clients encode
#   (`query_encodings`), and the signature must verify with one of them: Python's urlencode
#   (space "+", "~" kept), Java's URLEncoder (space "+", "*" kept, "~" escaped), Node.js's
#   querystring (space "%20", "!~*'()" kept), and Node.js's after `new URL` escapes "'". The
#   pairs, and so what the signature covers, are the same in each.
_SERVICE_LABEL = r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}(?::[0-9]{1,5})?"
_PORT = re.compile(r":[0-9]{1,5}$")
# SecretIds are short ASCII (Tencent's: AKID + 32); bounding them keeps junk out of the
# credential lookup and its cache
_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<secret_id>[A-Za-z0-9_-]{1,128})/(?P<date>\d{4}-\d{2}-\d{2})/"
    rf"(?P<service>{_SERVICE_LABEL})/tc3_request\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


@dataclass(frozen=True)
class SignedRequest:
    """What signature verification needs from an HTTP request."""

    method: str
    headers: Mapping[str, str]  # lower-cased names
    canonical_query: str  # "" for POST
    body: bytes
    other_queries: tuple[str, ...] = ()  # the same query as other clients encode it (GET)


@dataclass(frozen=True)
class Authorization:
    """The parsed `Authorization: TC3-HMAC-SHA256 ...` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The credential-scope date (UTC) of a Unix timestamp."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def parse_authorization(value: str | None) -> Authorization:
    if not value:
        raise AuthError("The Authorization header is missing.", "AuthFailure.InvalidAuthorization")
    if len(value) > MAX_AUTHORIZATION:
        raise AuthError("The Authorization header is too long.", "AuthFailure.InvalidAuthorization")
    m = _AUTH_RE.match(value.strip())
    if m is None:
        raise AuthError(
            "The Authorization header is not a TC3-HMAC-SHA256 authorization "
            "(only TC3-HMAC-SHA256 signing is supported).",
            "AuthFailure.InvalidAuthorization",
        )
    signed = tuple(h.strip().lower() for h in m["signed"].split(";") if h.strip())
    if "content-type" not in signed or "host" not in signed:
        raise AuthError(
            "SignedHeaders must include content-type and host.", "AuthFailure.InvalidAuthorization"
        )
    return Authorization(m["secret_id"], m["date"], m["service"], signed, m["signature"].lower())


def _payload_hash(req: SignedRequest) -> str:
    """The last line of the canonical request: SHA-256 of the body, of "" for GET, or of
    UNSIGNED-PAYLOAD when the client says so."""
    if req.headers.get("x-tc-content-sha256", "") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    elif req.method == "GET":
        payload = b""
    else:
        payload = req.body
    return hashlib.sha256(payload).hexdigest()


def canonical_request(req: SignedRequest, signed_headers: tuple[str, ...], lower_values: bool,
                      host: str | None = None, hashed_payload: str | None = None) -> str:
    """The TC3 canonical request; `host` replaces the received Host value (see the rules above)."""
    lines = []
    for name in signed_headers:
        value = host if name == "host" and host is not None else req.headers.get(name, "").strip()
        lines.append(f"{name}:{value.lower() if lower_values else value}\n")
    return "\n".join(
        [
            req.method,
            "/",
            req.canonical_query,
            "".join(lines),
            ";".join(signed_headers),
            _payload_hash(req) if hashed_payload is None else hashed_payload,
        ]
    )


def _signing_key(secret_key: str, date: str, service: str) -> bytes:
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    return _hmac(_hmac(k_date, service), "tc3_request")


def _sign(key: bytes, timestamp: str, date: str, service: str, canonical: str) -> str:
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def signature(secret_key: str, timestamp: str, date: str, service: str, canonical: str) -> str:
    return _sign(_signing_key(secret_key, date, service), timestamp, date, service, canonical)


def signed_hosts(received: str) -> tuple[str, ...]:
    """The hosts a client may have signed for this Host header: as received, and without its
    port (the Node.js SDK signs the URL's hostname but sends host:port)."""
    received = received.strip()
    bare = _PORT.sub("", received)
    return (received,) if bare == received else (received, bare)


# characters each client's query encoder leaves as they are (besides ASCII letters and digits)
_KEPT = {"python": "_.-~", "java": "_.-*", "node": "_.-!~*'()", "node-url": "_.-!~*()"}
_SPACE = {"python": "+", "java": "+", "node": "%20", "node-url": "%20"}


def _escape(text: str, kept: str, space: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in kept) else space if ch == " "
                   else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in text)


def query_encodings(pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    """A parsed GET query encoded as each official client encodes it (see the rules above),
    Python's first, without repeats (a plain query reads the same in all)."""
    encoded = {"&".join(f"{_escape(k, _KEPT[c], _SPACE[c])}={_escape(v, _KEPT[c], _SPACE[c])}" for k, v in pairs): None
               for c in _KEPT}
    return tuple(encoded)


def _canonical_candidates(req: SignedRequest, signed_headers: tuple[str, ...]) -> list[str]:
    """The canonical requests a client may have signed: two hosts, header values lower-cased or
    verbatim, and for a GET the query as each client encodes it."""
    hashed = _payload_hash(req)  # once: the body may be 1 MB
    candidates: dict[str, None] = {}  # ordered, without repeats (most values have no capitals)
    for query in (req.canonical_query, *req.other_queries):
        variant = req if query == req.canonical_query else dataclasses.replace(req, canonical_query=query)
        for host in signed_hosts(req.headers.get("host", "")):
            for lower_values in (True, False):
                candidates[canonical_request(variant, signed_headers, lower_values, host, hashed)] = None
    return list(candidates)


def verify_tc3(req: SignedRequest, lookup_secret_key: Callable[[str], str | None], now: float,
               service: str | None = None) -> str:
    """Verify a TC3-HMAC-SHA256 request and return its SecretId.

    `lookup_secret_key(secret_id)` returns the key or None for an unknown SecretId.
    `service` pins the credential scope's service; None accepts the label the client signed
    with (see the rules above). Header values are compared lower-cased (as TC3 canonicalises
    them) and, for clients that sign them verbatim, as received.
    """
    auth = parse_authorization(req.headers.get("authorization"))
    raw_ts = req.headers.get("x-tc-timestamp", "")
    if not raw_ts:
        raise RequestError("The X-TC-Timestamp header is missing.", "MissingParameter")
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise RequestError("X-TC-Timestamp must be Unix seconds.", "InvalidParameter")
    timestamp = int(raw_ts)
    if req.method != "GET" and req.headers.get("x-tc-content-sha256", "") == UNSIGNED_PAYLOAD:
        # the body (storage keys, layout) would go unsigned: anyone on the path could rewrite it
        raise AuthError("X-TC-Content-SHA256: UNSIGNED-PAYLOAD is not accepted for a request with a body; "
                        "sign the body.", "AuthFailure.SignatureFailure")
    if abs(now - timestamp) > MAX_CLOCK_SKEW_S:
        raise AuthError(
            f"The request timestamp {timestamp} differs from the server time {int(now)} by more "
            f"than {MAX_CLOCK_SKEW_S} seconds.",
            "AuthFailure.SignatureExpire",
        )
    secret_key = lookup_secret_key(auth.secret_id)
    if secret_key is None:
        raise AuthError(f"The SecretId {auth.secret_id} is not known.", "AuthFailure.SecretIdNotFound")
    failure = AuthError(
        "The provided credentials could not be validated. Please check your signature is correct.",
        "AuthFailure.SignatureFailure",
    )
    if (service is not None and auth.service != service) or auth.date != utc_date(timestamp):
        raise failure
    key = _signing_key(secret_key, auth.date, auth.service)
    for canonical in _canonical_candidates(req, auth.signed_headers):
        if hmac.compare_digest(_sign(key, raw_ts, auth.date, auth.service, canonical), auth.signature):
            return auth.secret_id
    raise failure


def sign_tc3(
    secret_id: str,
    secret_key: str,
    method: str,
    host: str,
    content_type: str,
    body: bytes,
    timestamp: int,
    canonical_query: str = "",
) -> str:
    """Return the Authorization header the official SDK would send (content-type;host)."""
    date = utc_date(timestamp)
    req = SignedRequest(
        method=method,
        headers={"content-type": content_type, "host": host},
        canonical_query=canonical_query,
        body=body,
    )
    signed = ("content-type", "host")
    sig = signature(secret_key, str(timestamp), date, SERVICE, canonical_request(req, signed, False))
    return (
        f"{ALGORITHM} Credential={secret_id}/{date}/{SERVICE}/tc3_request, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig}"
    )


def callback_sign(key: str, body: bytes) -> str:
    """`Sign` header of a callback: base64(HMAC-SHA256(callback key, exact body bytes))."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode()
