"""The API 3.0 envelope: authenticate, route and answer one HTTP request.

`handle` never raises: every outcome is an API 3.0 reply (HTTP 200 at the edge) with a
RequestId, because the official SDK turns anything else into ServerNetworkError.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib import models, recordings, validation
from chalicelib.apps import App, AppRegistry
from chalicelib.errors import AuthError, CloudrecError, RequestError, to_api_error
from chalicelib.limits import FailureLimiter, RateLimiter
from chalicelib.recordings import Recordings
from chalicelib.replay import SignatureLedger
from chalicelib.signing import SignedRequest, parse_authorization, query_encodings, verify_tc3

log = logging.getLogger(__name__)

VERSION = "2019-07-22"
# Checked before any work (hashing, lookups): a request past these is not one the SDK sends.
MAX_BODY_BYTES = 1_000_000
MAX_QUERY_PAIRS = 512
MAX_QUERY_CHARS = 64 * 1024
MAX_KEY_DEPTH = 8  # the SDK's deepest: MixLayoutParams.WaterMarkList.0.WaterMarkImage.WaterMarkUrl
MAX_ACTION = 64
MAX_MESSAGE = 1024
_INDEX = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the edge received it (header names lower-cased)."""

    method: str
    headers: Mapping[str, str]
    query: list[tuple[str, str]]
    body: bytes
    source: str = ""  # the caller's address, when the edge knows it


@dataclass
class Outcome:
    """The reply body and what the edge logs and counts about it."""

    body: dict[str, Any]
    request_id: str
    action: str = ""
    sdkappid: int | None = None
    task_id: str | None = None
    error_code: str | None = None
    annotate: Callable[..., None] = field(default=lambda **_: None, repr=False)

    def learn(self, **keys: Any) -> None:
        for name, value in keys.items():
            setattr(self, name, value)
        self.annotate(**keys)


@dataclass(frozen=True)
class Api:
    """Everything an API request needs: the apps, the limiter and the recordings."""

    apps: AppRegistry
    limiter: RateLimiter
    recordings: Recordings
    regions: tuple[str, ...]
    failures: FailureLimiter = field(default_factory=FailureLimiter)

    @functools.cached_property
    def signatures(self) -> SignatureLedger:
        return SignatureLedger(self.limiter)  # in the limiter's table


Handler = Callable[[Api, App, Any], dict[str, Any]]


def _create(api: Api, app: App, req: models.CreateCloudRecordingRequest) -> dict[str, Any]:
    return {"TaskId": recordings.create(api.recordings, app, req)}


ACTIONS: dict[str, tuple[type[models.AppScoped], Handler]] = {
    "CreateCloudRecording": (models.CreateCloudRecordingRequest, _create),
    "DescribeCloudRecording": (models.DescribeCloudRecordingRequest,
                               lambda api, app, req: recordings.describe(api.recordings, req)),
    "ModifyCloudRecording": (models.ModifyCloudRecordingRequest,
                             lambda api, app, req: recordings.modify(api.recordings, req)),
    "DeleteCloudRecording": (models.DeleteCloudRecordingRequest,
                             lambda api, app, req: recordings.delete(api.recordings, req)),
}


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rebuild the nested parameters the SDK flattens into a GET query
    (`RecordParams.RecordMode=1`, `X.SubscribeAudioUserIds.0=u1`)."""
    root: dict[str, Any] = {}
    if len(pairs) > MAX_QUERY_PAIRS:
        raise RequestError(f"The query holds more than {MAX_QUERY_PAIRS} parameters.",
                           "InvalidParameter.UrlParamsError")
    for key, value in pairs:
        parts = key.split(".")
        if len(parts) > MAX_KEY_DEPTH:
            raise RequestError(f"The query parameter {key[:100]} nests deeper than any TRTC parameter.",
                               "InvalidParameter.UrlParamsError")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # "A=1&A.B=2": the scalar wins
                break
            node = child
        else:
            node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(_INDEX.fullmatch(k) for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _read_params(req: HttpRequest) -> tuple[dict[str, Any], bool]:
    """The request parameters and whether they are typed JSON (strict) or GET strings."""
    if req.method == "GET":
        return unflatten(req.query), False
    try:
        params = json.loads(req.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise RequestError("The request body is not valid JSON.", "InvalidParameter.BodyParamsError") from None
    except RecursionError:
        raise RequestError("The request body nests too deeply.", "InvalidParameter.BodyParamsError") from None
    if not isinstance(params, dict):
        raise RequestError("The request body must be a JSON object.", "InvalidParameter.BodyParamsError")
    return params, True


def _check_size(req: HttpRequest) -> None:
    if len(req.body) > MAX_BODY_BYTES:
        raise RequestError("The request body is larger than 1 MB.", "RequestSizeLimitExceeded")
    if len(req.query) > MAX_QUERY_PAIRS or sum(len(k) + len(v) for k, v in req.query) > MAX_QUERY_CHARS:
        raise RequestError("The query string is too large.", "RequestSizeLimitExceeded")


def _authenticate(api: Api, req: HttpRequest, now: float) -> frozenset[int]:
    api.failures.check(req.source, now)
    queries = query_encodings(req.query) if req.method == "GET" else ("",)
    signed = SignedRequest(req.method, req.headers, queries[0], req.body, other_queries=queries[1:])
    try:
        secret_id = verify_tc3(signed, _secret_lookup(api), now)
    except CloudrecError:
        api.failures.failed(req.source, now)
        raise
    cred = api.apps.get_credential(secret_id)
    assert cred is not None  # verify_tc3 looked it up
    return cred.sdkappids


def _secret_lookup(api: Api) -> Callable[[str], str | None]:
    def lookup(secret_id: str) -> str | None:
        cred = api.apps.get_credential(secret_id)
        return cred.secret_key if cred else None

    return lookup


def _ignore(**_: Any) -> None:
    return None


def handle(api: Api, req: HttpRequest, now: float, request_id: str | None = None,
           annotate: Callable[..., None] = _ignore) -> Outcome:
    """Answer one API request; never raises. `annotate(**keys)` learns the action, app and
    TaskId as soon as they are known (the edge puts them on every log line)."""
    out = Outcome(body={}, request_id=request_id or str(uuid.uuid4()), annotate=annotate)
    try:
        out.body = _dispatch(api, req, now, out)
    except Exception as exc:  # every failure becomes an API 3.0 error reply
        code, message = to_api_error(exc)
        if not isinstance(exc, CloudrecError):
            log.exception("unexpected failure in %s", out.action or "request")
        out.error_code = code
        out.body = {"Error": {"Code": code, "Message": _sendable(message)}}
    out.body["RequestId"] = out.request_id
    out.body = {"Response": out.body}
    return out


def _sendable(message: str) -> str:
    """A message the edge can always encode: bounded, and UTF-8 clean (an echoed value may
    hold a lone surrogate from a JSON escape)."""
    return message[:MAX_MESSAGE].encode("utf-8", "replace").decode("utf-8")


def _dispatch(api: Api, req: HttpRequest, now: float, out: Outcome) -> dict[str, Any]:
    if req.method not in ("GET", "POST"):
        raise RequestError(f"HTTP method {req.method[:16]} is not supported: use POST (or GET).",
                           "UnsupportedProtocol")
    _check_size(req)
    action = req.headers.get("x-tc-action", "")
    if len(action) > MAX_ACTION:
        raise RequestError("The X-TC-Action header names no action.", "InvalidAction")
    out.learn(action=action)
    if not action:
        raise RequestError("The X-TC-Action header is missing.", "MissingParameter")
    owned = _authenticate(api, req, now)
    if action not in ACTIONS:
        raise RequestError(f"The action {action} does not exist.", "InvalidAction")
    version = req.headers.get("x-tc-version", "")
    if version != VERSION:
        raise RequestError(f"The version {version or '(none)'} of {action} does not exist; use {VERSION}.",
                           "NoSuchVersion")
    region = req.headers.get("x-tc-region", "")
    if not region:
        raise RequestError("The X-TC-Region header is missing.", "MissingParameter")
    if region not in api.regions:
        raise RequestError(f"The region {region} is not supported.", "UnsupportedRegion")
    signature = parse_authorization(req.headers.get("authorization")).signature
    return _answer(api, req, out, action, owned, now, signature)


def _answer(api: Api, req: HttpRequest, out: Outcome, action: str, owned: frozenset[int], now: float,
            signature: str) -> dict[str, Any]:
    params, strict = _read_params(req)
    model, run = ACTIONS[action]
    scope = validation.parse(models.AppScoped, params, strict)
    out.learn(sdkappid=scope.SdkAppId)
    if isinstance(params.get("TaskId"), str):  # bounded and UTF-8 clean: it goes on every log line
        out.learn(task_id=_sendable(params["TaskId"][:256]))
    app = api.apps.get_app(scope.SdkAppId)
    if scope.SdkAppId not in owned or app is None:
        raise AuthError(f"This SecretId may not act for SdkAppId {scope.SdkAppId}.",
                        "AuthFailure.UnauthorizedOperation")
    first_answer = api.signatures.admit(scope.SdkAppId, action, app.qps, signature,
                                        int(req.headers["x-tc-timestamp"]), now)
    if first_answer is not None:  # the same Create again: its first answer, not a second task
        out.learn(task_id=first_answer)
        return {"TaskId": first_answer}
    result = run(api, app, validation.parse(model, params, strict))
    if action == "CreateCloudRecording":
        api.signatures.answered(signature, result["TaskId"])
    if result.get("TaskId") != out.task_id:
        out.learn(task_id=result["TaskId"])
    return result
