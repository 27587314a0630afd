"""The apps registry in DynamoDB: per SdkAppId its API credentials, UserSig key, callback,
limits and room backend (the Janus that hosts its rooms).

Items: `app#<SdkAppId>` holds an App; `key#<SecretId>` holds a SecretKey and the apps it
may act for. Reads are cached for a few seconds per process.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from chalicelib import config

_de = TypeDeserializer()
CACHE_S = 5.0
# Unknown SecretIds are cached too (as None), so a caller cycling through made-up ones must not
# grow the cache without end: the least recently used entry goes first.
CACHE_ENTRIES = 1024
# the attributes of an app's item a recorder may read (chalicelib/recorder_access.py)
RECORDER_VIEW = ("sdkappid", "usersig_key", "room_json")


@dataclass(frozen=True)
class RoomBackend:
    """How recorders reach an app's rooms (DESIGN.md room mapping)."""

    janus_url: str
    api_secret: str = ""
    token: str = ""
    string_ids: bool = True
    room_pin: str = ""
    room_secret: str = ""
    ice_servers: tuple[dict[str, Any], ...] = ()
    # rooms named "<SdkAppId>/<RoomId>" in Janus ("/" is in no TRTC RoomId): how apps share a Janus
    room_namespace: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RoomBackend:
        data = json.loads(text)
        data["ice_servers"] = tuple(data.get("ice_servers", ()))
        return cls(**data)


@dataclass(frozen=True)
class App:
    """One SdkAppId. `usersig_key` and `callback_key` are secrets: never log or return them."""

    sdkappid: int
    usersig_key: str
    room: RoomBackend
    callback_url: str = ""
    callback_key: str = ""
    qps: int = 20
    max_concurrent: int = 100
    secret_ids: tuple[str, ...] = field(default=())

    def public_view(self) -> dict[str, Any]:
        """What an admin may print: everything but secrets."""
        room = asdict(self.room)
        room["api_secret"] = "***" if room["api_secret"] else ""
        room["token"] = "***" if room["token"] else ""
        room["room_secret"] = "***" if room["room_secret"] else ""
        room["room_pin"] = "***" if room["room_pin"] else ""
        return {
            "SdkAppId": self.sdkappid,
            "SecretIds": list(self.secret_ids),
            "CallbackUrl": self.callback_url,
            "Qps": self.qps,
            "MaxConcurrent": self.max_concurrent,
            "Room": room,
        }


@dataclass(frozen=True)
class ApiCredential:
    secret_id: str
    secret_key: str
    sdkappids: frozenset[int]


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


class AppRegistry:
    """Reads and writes apps and credentials in the apps table."""

    def __init__(self, client: Any, table: str, clock: Any = time.monotonic) -> None:
        self._db = client
        self._table = table
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()  # the local server answers on several threads

    def _cached_get(self, pk: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._cache.get(pk)
            if hit is not None and self._clock() - hit[0] < CACHE_S:
                self._cache.move_to_end(pk)
                return hit[1]
        item = self._db.get_item(TableName=self._table, Key={"pk": {"S": pk}}).get("Item")
        value = _plain(item) if item else None
        with self._lock:
            self._cache[pk] = (self._clock(), value)
            self._cache.move_to_end(pk)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def get_app(self, sdkappid: int) -> App | None:
        raw = self._cached_get(f"app#{sdkappid}")
        return _app_from(raw) if raw else None

    def get_room_view(self, sdkappid: int) -> App | None:
        """What a recorder reads of its app — how to reach its rooms and tag its robots — and
        nothing more (no callback key, no SecretIds); its credentials allow no other read."""
        item = self._db.get_item(TableName=self._table, Key={"pk": {"S": f"app#{sdkappid}"}},
                                 ProjectionExpression=", ".join(RECORDER_VIEW)).get("Item")
        return _app_from(_plain(item)) if item else None

    def get_credential(self, secret_id: str) -> ApiCredential | None:
        raw = self._cached_get(f"key#{secret_id}")
        if not raw:
            return None
        return ApiCredential(secret_id, raw["secret_key"], frozenset(int(a) for a in raw["sdkappids"]))

    def put_app(self, app: App, secret_id: str, secret_key: str) -> App:
        """Create or replace an app and let `secret_id` (with `secret_key`) act for it. Refused
        (SharedJanusError) where its rooms could be another app's: on a Janus that an app with
        rooms of the same names uses already."""
        clash = next((other for other in self.list_apps() if other.sdkappid != app.sdkappid
                      and _same_janus(other.room, app.room) and not (other.room.room_namespace
                                                                     or app.room.room_namespace)), None)
        if clash is not None:
            raise SharedJanusError(f"SdkAppId {clash.sdkappid} has its rooms on this Janus already, under the same "
                                   "names: either app could record the other's. Give this app a Janus of its own, "
                                   "or its own room namespace (--room-namespace).")
        if app.room.room_namespace and not app.room.string_ids:
            raise SharedJanusError("A room namespace needs a Janus with string_ids.")
        self._db.update_item(
            TableName=self._table, Key={"pk": {"S": f"key#{secret_id}"}},
            UpdateExpression="SET secret_key = :k ADD sdkappids :a",
            ExpressionAttributeValues={":k": {"S": secret_key}, ":a": {"NS": [str(app.sdkappid)]}},
        )
        owners = set(app.secret_ids) | {secret_id}
        app = replace(app, secret_ids=tuple(sorted(owners)))
        self._db.put_item(TableName=self._table, Item={
            "pk": {"S": f"app#{app.sdkappid}"},
            "sdkappid": {"N": str(app.sdkappid)},
            "usersig_key": {"S": app.usersig_key},
            "callback_url": {"S": app.callback_url},
            "callback_key": {"S": app.callback_key},
            "qps": {"N": str(app.qps)},
            "max_concurrent": {"N": str(app.max_concurrent)},
            "room_json": {"S": app.room.to_json()},
            "secret_ids": {"SS": list(app.secret_ids)},
        })
        self._cache.clear()
        return app

    def list_apps(self) -> list[App]:
        apps: list[App] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._db.scan(**kwargs)
            apps += [_app_from(_plain(i)) for i in page.get("Items", []) if i["pk"]["S"].startswith("app#")]
            if "LastEvaluatedKey" not in page:
                return sorted(apps, key=lambda a: a.sdkappid)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class SharedJanusError(ValueError):
    """Two apps would name rooms alike on one Janus."""


def _same_janus(a: RoomBackend, b: RoomBackend) -> bool:
    return a.janus_url.rstrip("/").lower() == b.janus_url.rstrip("/").lower()


def _app_from(raw: dict[str, Any]) -> App:
    return App(
        sdkappid=int(raw["sdkappid"]),
        usersig_key=raw["usersig_key"],
        room=RoomBackend.from_json(raw["room_json"]),
        callback_url=raw.get("callback_url", ""),
        callback_key=raw.get("callback_key", ""),
        qps=int(raw.get("qps", 20)),
        max_concurrent=int(raw.get("max_concurrent", 100)),
        secret_ids=tuple(sorted(raw.get("secret_ids", ()))),
    )


def dev_app_from_env(env: Mapping[str, str]) -> tuple[App, str, str]:
    """The development app of the local stack, from CLOUDREC_* (chalicelib/config.py); ConfigError
    for a bad value."""
    janus_url = config.CLOUDREC_JANUS_URL.get(env) or (
        f"http://127.0.0.1:{config.CLOUDREC_JANUS_HTTP_PORT.get(env)}/janus"
    )
    app = App(
        sdkappid=config.CLOUDREC_SDKAPPID.get(env),
        usersig_key=config.CLOUDREC_USERSIG_KEY.get(env),
        room=RoomBackend(
            janus_url=janus_url,
            api_secret=config.CLOUDREC_JANUS_API_SECRET.get(env),
            string_ids=config.CLOUDREC_JANUS_STRING_IDS.get(env),
            room_pin=config.CLOUDREC_JANUS_ROOM_PIN.get(env),
            room_secret=config.CLOUDREC_JANUS_ROOM_SECRET.get(env),
            ice_servers=config.CLOUDREC_ICE_SERVERS.get(env),
        ),
        callback_url=config.CLOUDREC_CALLBACK_URL.get(env) or "",
        callback_key=config.CLOUDREC_CALLBACK_KEY.get(env),
        qps=config.CLOUDREC_QPS.get(env),
        max_concurrent=config.CLOUDREC_MAX_CONCURRENT.get(env),
    )
    return app, config.CLOUDREC_SECRET_ID.get(env), config.CLOUDREC_SECRET_KEY.get(env)
