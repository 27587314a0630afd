"""The API 3.0 envelope: authenticate, route and answer one HTTP request.

`handle` never raises: every outcome is an API 3.0 reply (HTTP 200 at the edge) with a
RequestId, because the official SDK turns anything else into ServerNetworkError.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from chalicelib import models, recordings, validation
from chalicelib.apps import App, AppRegistry
from chalicelib.errors import AuthError, CloudrecError, RequestError, to_api_error
from chalicelib.limits import RateLimiter
from chalicelib.recordings import Recordings
from chalicelib.signing import SignedRequest, verify_tc3

log = logging.getLogger(__name__)

VERSION = "2019-07-22"
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the edge received it (header names lower-cased)."""

    method: str
    headers: Mapping[str, str]
    query: list[tuple[str, str]]
    body: bytes


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
    for key, value in pairs:
        parts = key.split(".")
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
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _read_params(req: HttpRequest) -> tuple[dict[str, Any], bool]:
    """The request parameters and whether they are typed JSON (strict) or GET strings."""
    if req.method == "GET":
        return unflatten(req.query), False
    if len(req.body) > MAX_BODY_BYTES:
        raise RequestError("The request body is larger than 1 MB.", "RequestSizeLimitExceeded")
    try:
        params = json.loads(req.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise RequestError("The request body is not valid JSON.", "InvalidParameter.BodyParamsError") from None
    if not isinstance(params, dict):
        raise RequestError("The request body must be a JSON object.", "InvalidParameter.BodyParamsError")
    return params, True


def _authenticate(api: Api, req: HttpRequest, now: float) -> frozenset[int]:
    query = urlencode(req.query) if req.method == "GET" else ""
    signed = SignedRequest(req.method, req.headers, query, req.body)
    secret_id = verify_tc3(signed, _secret_lookup(api), now)
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
        out.body = {"Error": {"Code": code, "Message": message}}
    out.body["RequestId"] = out.request_id
    out.body = {"Response": out.body}
    return out


def _dispatch(api: Api, req: HttpRequest, now: float, out: Outcome) -> dict[str, Any]:
    if req.method not in ("GET", "POST"):
        raise RequestError(f"HTTP method {req.method} is not supported: use POST (or GET).",
                           "UnsupportedProtocol")
    action = req.headers.get("x-tc-action", "")
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
    params, strict = _read_params(req)
    model, run = ACTIONS[action]
    scope = validation.parse(models.AppScoped, params, strict)
    out.learn(sdkappid=scope.SdkAppId)
    if isinstance(params.get("TaskId"), str):
        out.learn(task_id=params["TaskId"])
    app = api.apps.get_app(scope.SdkAppId)
    if scope.SdkAppId not in owned or app is None:
        raise AuthError(f"This SecretId may not act for SdkAppId {scope.SdkAppId}.",
                        "AuthFailure.UnauthorizedOperation")
    api.limiter.hit(scope.SdkAppId, action, app.qps, now)
    result = run(api, app, validation.parse(model, params, strict))
    if result.get("TaskId") != out.task_id:
        out.learn(task_id=result["TaskId"])
    return result
