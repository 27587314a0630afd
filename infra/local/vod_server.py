"""A local stand-in for Tencent VOD's upload API (API 3.0, version 2018-07-17).

ApplyUpload grants a key in one bucket of the AWS emulation and a throwaway credential,
CommitUpload checks the media object is really there and files a media record, and
DescribeMediaInfos returns the records in VOD's shape. Requests are checked as the real
service checks them: a TC3-HMAC-SHA256 signature for service "vod", the version, the
region; every answer is HTTP 200 with `{"Response": {...}}`.

    python -m infra.local.vod_server --port 8090   # against CLOUDREC_AWS_ENDPOINT
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import posixpath
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import config
from chalicelib.errors import CloudrecError, RequestError, to_api_error
from chalicelib.signing import SignedRequest, verify_tc3
from infra.local.vod_records import MediaRecord, UploadSession, apply_params, int_param, now_iso

log = logging.getLogger(__name__)

VERSION = "2018-07-17"
SERVICE = "vod"  # the credential scope the official SDK signs VOD requests with
MAX_BODY_BYTES = 1_000_000
DEFAULT_STORAGE_REGION = "ap-guangzhou"
MAX_FILE_IDS = 20
CERT_LIFETIME_S = 3600
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
# Actions whose Region common parameter VOD documents as required.
_REGION_REQUIRED = {"ApplyUpload", "CommitUpload"}


def verify_signature(req: SignedRequest, lookup_secret_key: Callable[[str], str | None], now: float) -> str:
    """Verify a TC3-HMAC-SHA256 request signed for service "vod"; return its SecretId."""
    return verify_tc3(req, lookup_secret_key, now, service=SERVICE)


class VodServer:
    """The VOD stand-in on 127.0.0.1:`port` (0 picks a free port), storing in `bucket`.

    `credentials` maps SecretId to SecretKey. `media` holds the committed files by FileId;
    `actions` lists the actions received; each code in `faults` answers one request
    (after authentication) as an error, to exercise retries.
    """

    def __init__(self, port: int, s3_client: Any, bucket: str, credentials: Mapping[str, str],
                 storage_region: str = DEFAULT_STORAGE_REGION) -> None:
        self._port = port
        self._s3 = s3_client
        self.bucket = bucket
        self._credentials = dict(credentials)
        self.storage_region = storage_region
        self.sessions: dict[str, UploadSession] = {}
        self.media: dict[str, MediaRecord] = {}
        self.actions: list[str] = []
        self.faults: list[str] = []
        self._lock = threading.Lock()
        self._file_ids = itertools.count(5285890780000000000 + secrets.randbelow(10 ** 9) * 1000)
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the VOD stand-in is not started")
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> None:
        self._http = _HttpServer(self._port, self)
        # a short poll keeps stop() quick (shutdown waits for the loop to look)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="vod-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = self._thread = None

    def handle(self, method: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> dict[str, Any]:
        """Answer one request (header names lower-cased); never raises."""
        request_id = str(uuid.uuid4())
        try:
            reply = self._dispatch(method, headers, body, time.time() if now is None else now)
        except Exception as exc:  # every failure is an API 3.0 error reply
            if not isinstance(exc, CloudrecError):
                log.exception("VOD stand-in failure")
            code, message = to_api_error(exc)
            reply = {"Error": {"Code": code, "Message": message}}
        reply["RequestId"] = request_id
        return {"Response": reply}

    def _dispatch(self, method: str, headers: Mapping[str, str], body: bytes, now: float) -> dict[str, Any]:
        if method != "POST":
            raise RequestError(f"HTTP method {method} is not supported by this stand-in: use POST.",
                               "UnsupportedProtocol")
        action = headers.get("x-tc-action", "")
        if not action:
            raise RequestError("The X-TC-Action header is missing.", "MissingParameter")
        if len(body) > MAX_BODY_BYTES:
            raise RequestError("The request body is larger than 1 MB.", "RequestSizeLimitExceeded")
        secret_id = verify_signature(SignedRequest("POST", headers, "", body), self._credentials.get, now)
        handlers: dict[str, Callable[[str, dict[str, Any], float], dict[str, Any]]] = {
            "ApplyUpload": self._apply_upload,
            "CommitUpload": self._commit_upload,
            "DescribeMediaInfos": self._describe_media_infos,
        }
        if action not in handlers:
            raise RequestError(f"The action {action} does not exist.", "InvalidAction")
        if headers.get("x-tc-version") != VERSION:
            raise RequestError(f"The version {headers.get('x-tc-version') or '(none)'} of {action} does not "
                               f"exist; use {VERSION}.", "NoSuchVersion")
        if action in _REGION_REQUIRED and not headers.get("x-tc-region"):
            raise RequestError("The X-TC-Region header is missing.", "MissingParameter")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise RequestError("The request body is not valid JSON.", "InvalidParameter") from None
        if not isinstance(params, dict):
            raise RequestError("The request body must be a JSON object.", "InvalidParameter")
        with self._lock:
            self.actions.append(action)
            fault = self.faults.pop(0) if self.faults else None
        if fault:
            raise CloudrecError("Injected fault.", fault)
        return handlers[action](secret_id, params, now)

    def _apply_upload(self, secret_id: str, params: dict[str, Any], now: float) -> dict[str, Any]:
        clean = apply_params(params)
        stem = _NAME_RE.sub("_", posixpath.splitext(clean["MediaName"] or "")[0]).strip("._") or "f0"
        media_path = f"/{secrets.token_hex(8)}/{stem[:64]}.{clean['MediaType']}"
        region = clean["StorageRegion"] or self.storage_region
        session_key = secrets.token_urlsafe(48)
        with self._lock:
            self.sessions[session_key] = UploadSession(secret_id, media_path, region, clean)
        return {
            "StorageBucket": self.bucket,
            "StorageRegion": region,
            "VodSessionKey": session_key,
            "MediaStoragePath": media_path,
            "CoverStoragePath": "",
            "TempCertificate": {
                "SecretId": "AKIDTMP" + secrets.token_hex(12),
                "SecretKey": secrets.token_hex(16),
                "Token": secrets.token_urlsafe(32),
                "ExpiredTime": int(now) + CERT_LIFETIME_S,
            },
        }

    def _commit_upload(self, secret_id: str, params: dict[str, Any], now: float) -> dict[str, Any]:
        session_key = params.get("VodSessionKey")
        if not session_key:
            raise CloudrecError("The VodSessionKey parameter is missing.", "MissingParameter")
        with self._lock:
            session = self.sessions.get(str(session_key))
        if session is None or session.secret_id != secret_id:
            raise CloudrecError("The VodSessionKey is invalid, expired or already committed.",
                                "InvalidParameterValue.VodSessionKey")
        sub_app_id = int_param(params, "SubAppId", "InvalidParameterValue.SubAppId")
        if sub_app_id != session.params["SubAppId"]:
            raise CloudrecError("SubAppId differs from the one given to ApplyUpload.",
                                "InvalidParameterValue.SubAppId")
        missing = self._missing_objects(session)
        if missing:
            raise CloudrecError(f"The upload is incomplete: {missing} was not stored.", "FailedOperation")
        endpoint = str(self._s3.meta.endpoint_url).rstrip("/")
        p = session.params
        with self._lock:
            if self.sessions.pop(str(session_key), None) is None:  # committed meanwhile
                raise CloudrecError("The VodSessionKey was already committed.", "InvalidParameterValue.VodSessionKey")
            file_id = str(next(self._file_ids))
            record = MediaRecord(
                file_id=file_id, name=p["MediaName"] or posixpath.basename(session.media_path),
                type=p["MediaType"], procedure=p["Procedure"], expire_time=p["ExpireTime"], class_id=p["ClassId"],
                sub_app_id=p["SubAppId"], source_context=p["SourceContext"], session_context=p["SessionContext"],
                storage_region=session.storage_region, storage_path=session.media_path,
                media_url=f"{endpoint}/{self.bucket}{session.media_path}", create_time=now_iso(now))
            self.media[file_id] = record
        return {"FileId": file_id, "MediaUrl": record.media_url, "CoverUrl": ""}

    def _missing_objects(self, session: UploadSession) -> str | None:
        """The first object the session's upload lacks: the media, then (HLS) each segment
        its playlist names. The segment check is this stand-in's own strictness."""
        key = session.media_path.lstrip("/")
        if not self._exists(key):
            return session.media_path
        if session.params["MediaType"] != "m3u8":
            return None
        playlist = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8", "replace")
        folder = posixpath.dirname(key)
        for line in playlist.splitlines():
            name = line.strip()
            if name and not name.startswith("#"):
                segment = posixpath.normpath(posixpath.join(folder, name))
                if not self._exists(segment):
                    return "/" + segment
        return None

    def _exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def _describe_media_infos(self, secret_id: str, params: dict[str, Any], now: float) -> dict[str, Any]:
        file_ids = params.get("FileIds")
        if not file_ids:
            raise CloudrecError("The FileIds parameter is missing.", "MissingParameter")
        if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
            raise CloudrecError("FileIds must be a list of strings.", "InvalidParameterValue.FileIds")
        if len(file_ids) > MAX_FILE_IDS:
            raise CloudrecError(f"At most {MAX_FILE_IDS} FileIds may be given.", "InvalidParameterValue.FileIds")
        sub_app_id = int_param(params, "SubAppId", "InvalidParameterValue.SubAppId")
        filters = params.get("Filters") or ["basicInfo"]
        found, missing = [], []
        with self._lock:
            for file_id in file_ids:
                record = self.media.get(file_id)
                if record is None or record.sub_app_id != sub_app_id:
                    missing.append(file_id)
                    continue
                info = record.info()
                if "basicInfo" not in filters:
                    del info["BasicInfo"]
                found.append(info)
        return {"MediaInfoSet": found, "NotExistFileIdSet": missing}


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY_BYTES + 1)) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        data = json.dumps(self.server.vod.handle(self.command, headers, body)).encode()
        self.send_response(200)
        # exactly this: the SDK parses errors only from text/plain or application/json
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, vod: VodServer) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.vod = vod


def _s3_client(endpoint: str | None) -> Any:
    import boto3  # only the standalone stand-in needs its own client

    return boto3.client("s3", endpoint_url=endpoint,
                        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "local",
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "local")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--bucket", default="cloudrec-vod")
    parser.add_argument("--credential", action="append", default=[], metavar="SECRET_ID:SECRET_KEY",
                        help="a key pair the stand-in accepts (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s vod %(levelname)s %(message)s")
    try:
        endpoint = config.CLOUDREC_AWS_ENDPOINT.get(os.environ)
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if endpoint is None:
        print(f"{config.CLOUDREC_AWS_ENDPOINT.name} is not set: the stand-in needs the AWS emulation's S3.",
              file=sys.stderr)
        return 2
    pairs = [c.split(":", 1) for c in args.credential if ":" in c]
    if not pairs:
        pairs = [["AKIDLOCALVOD", "local-vod-key"]]
        log.info("no --credential given: accepting SecretId %s (key %s)", *pairs[0])
    s3 = _s3_client(endpoint)
    try:
        s3.create_bucket(Bucket=args.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    server = VodServer(args.port, s3, args.bucket, {sid: key for sid, key in pairs})
    server.start()
    log.info("VOD stand-in at %s, storing in s3://%s at %s", server.url, args.bucket, endpoint)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
