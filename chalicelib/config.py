"""Configuration: every CLOUDREC_* variable, declared once (`VARIABLES`: its name, what its
value must be, its default, who reads it and what it sets), and the deployment settings read
from them (`Settings.from_env`).

Whoever reads a variable reads it through its declaration (`CLOUDREC_SEGMENT_S.get(env)`), so a bad
value fails at start with the variable's name and what was expected (`ConfigError`). The
README's "Configuration" table is made from the declarations: `python -m chalicelib.config
--readme` rewrites it, a test checks it is current. Stdlib only: tools, benches and tests
import it cheaply.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

TRTC_REGIONS = ("ap-beijing", "ap-guangzhou", "ap-mumbai", "ap-shanghai", "ap-singapore")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
README = PROJECT_ROOT / "README.md"

T = TypeVar("T")

# who reads a variable (the README's "read by" column)
API = "API"  # the API and the event functions: Lambda, or locally the stack's API server and event pump
RECORDER = "recorder"
STACK = "local stack"
TESTS = "tests"


class ConfigError(ValueError):
    """A CLOUDREC_* variable holds what it must not; the message names it and what was expected."""


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What a variable's text must be (`expected`, as an error says it) and what it becomes
    (`parse`, which raises ValueError for a text that is not one)."""

    expected: str
    parse: Callable[[str], T]


def _text(value: str) -> str:
    return value


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(value)
        return number
    return parse


def _seconds(allow_zero: bool) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise ValueError(value)
        return number
    return parse


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise ValueError(value)
    return number


def _port_range(value: str) -> str:
    low, high = (_integer(1, 65535)(part) for part in value.split("-"))
    if low > high:
        raise ValueError(value)
    return f"{low}-{high}"


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    _ = parts.port  # a port that is not a number raises ValueError
    return value


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _choice(*values: str) -> Kind[str]:
    def parse(value: str) -> str:
        if value not in values:
            raise ValueError(value)
        return value
    return Kind("one of " + ", ".join(values), parse)


def _optional(kind: Kind[T]) -> Kind[T | None]:
    """`kind`, or None for an unset (empty) variable."""
    return Kind(kind.expected, lambda value: kind.parse(value) if value else None)


def _seal_key(value: str) -> str:
    if value and len(base64.b64decode(value, validate=True)) != 32:
        raise ValueError("not 32 bytes")
    return value


def _ice_servers(value: str) -> tuple[dict[str, Any], ...]:
    servers = json.loads(value)
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError(value)
    return tuple(servers)


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))


TEXT = Kind("text", _text)
NAMES = Kind("names separated by commas", _names)
PATH = Kind("a path", Path)
PORT = Kind("a port number (1-65535)", _integer(1, 65535))
PORT_RANGE = Kind("a port range LOW-HIGH (1-65535)", _port_range)
URL = Kind("an http:// or https:// URL", _url)
FLAG = Kind("1 or 0", _flag)
SECONDS = Kind("a number of seconds greater than 0", _seconds(allow_zero=False))
SECONDS_OR_ZERO = Kind("a number of seconds (0 or more)", _seconds(allow_zero=True))
COUNT = Kind("a whole number (0 or more)", _integer(0))
POSITIVE = Kind("a whole number (1 or more)", _integer(1))
SEAL_KEY = Kind("32 bytes in base64", _seal_key)
ICE_SERVERS = Kind('a JSON list of ICE servers, e.g. [{"urls": "stun:stun.example.com"}]', _ice_servers)
IP = Kind("an IP address", _ip)
CORES = Kind("a number of vCPUs greater than 0", _seconds(allow_zero=False))
FRACTION = Kind("a fraction from 0 up to (not including) 1", _fraction)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


@dataclass(frozen=True)
class Var(Generic[T]):
    """One CLOUDREC_* variable: its name, what its value must be, its default (the text used
    when it is unset or empty), who reads it and what it sets."""

    name: str
    kind: Kind[T]
    default: str
    readers: tuple[str, ...]
    doc: str
    shown: str = ""  # the README's default, where `default` alone would mislead
    secret: bool = False  # an error does not repeat its value

    def get(self, env: Mapping[str, str], default: str | None = None) -> T:
        """The value in `env` (or `default`, else the declared default, when unset or empty)."""
        raw = env.get(self.name) or (self.default if default is None else default)
        try:
            return self.kind.parse(raw)
        except ValueError:
            got = f"a value of {len(raw)} characters (a secret: not shown)" if self.secret else repr(raw)
            raise ConfigError(f"{self.name}: expected {self.kind.expected}, got {got}") from None


def _declare(name: str, kind: Kind[T], default: str, readers: tuple[str, ...], doc: str, shown: str = "",
             secret: bool = False) -> Var[T]:
    var = Var(name, kind, default, readers, doc, shown, secret)
    VARIABLES.append(var)
    return var


VARIABLES: list[Var[Any]] = []  # in the README's order

# the deployment: AWS resources, timing, limits (the API, the functions and the recorders)
CLOUDREC_AWS_ENDPOINT = _declare(
    "CLOUDREC_AWS_ENDPOINT", _optional(URL), "", (API, RECORDER, STACK),
    "where DynamoDB, SQS, S3, STS and KMS are reached: an emulation such as moto (unset: AWS itself)",
    shown="none (local stack: `http://127.0.0.1:<CLOUDREC_AWS_PORT>`)")
CLOUDREC_TASKS_TABLE = _declare("CLOUDREC_TASKS_TABLE", TEXT, "cloudrec-tasks", (API, RECORDER),
                                "the DynamoDB table of recording tasks")
CLOUDREC_APPS_TABLE = _declare("CLOUDREC_APPS_TABLE", TEXT, "cloudrec-apps", (API, RECORDER, STACK),
                               "the DynamoDB table of registered apps (SdkAppIds)")
CLOUDREC_LIMITS_TABLE = _declare("CLOUDREC_LIMITS_TABLE", TEXT, "cloudrec-limits", (API, RECORDER),
                                 "the DynamoDB table of rate windows, concurrency counters and signatures")
CLOUDREC_EVENTS_QUEUE = _declare("CLOUDREC_EVENTS_QUEUE", TEXT, "cloudrec-events.fifo", (API, RECORDER),
                                 "the SQS FIFO queue of task events (the callbacks' source)")
CLOUDREC_OUTPUTS_DLQ = _declare("CLOUDREC_OUTPUTS_DLQ", TEXT, "cloudrec-outputs-dlq", (API, STACK),
                                "the SQS queue where output jobs that failed for good wait (admin failed-outputs)")
CLOUDREC_IDEMPOTENCY_TABLE = _declare("CLOUDREC_IDEMPOTENCY_TABLE", TEXT, "cloudrec-idempotency", (API,),
                                      "the DynamoDB table that keeps an event from being posted twice")
CLOUDREC_INTERNAL_BUCKET = _declare("CLOUDREC_INTERNAL_BUCKET", TEXT, "cloudrec-internal", (API, RECORDER),
                                    "the S3 bucket of backups, VOD staging and output-job markers")
CLOUDREC_LAUNCHER = _declare("CLOUDREC_LAUNCHER", _choice("local", "ecs"), "local", (API, RECORDER),
                             "how a dedicated (cold) recorder starts: `local` child processes of the API, or "
                             "`ecs` Fargate tasks; workers report to the same platform (EventBridge with `ecs`)")
CLOUDREC_DISPATCH_QUEUE = _declare("CLOUDREC_DISPATCH_QUEUE", TEXT, "cloudrec-dispatch", (API, RECORDER),
                                   "the SQS queue of recordings waiting for a warm worker to claim them")
CLOUDREC_FALLBACK_QUEUE = _declare("CLOUDREC_FALLBACK_QUEUE", TEXT, "cloudrec-dispatch-fallback", (API,),
                                   "the SQS queue that hands an unclaimed recording to a dedicated recorder")
CLOUDREC_CLAIM_WAIT_S = _declare("CLOUDREC_CLAIM_WAIT_S", SECONDS_OR_ZERO, "3", (API,),
                                 "how long a recording waits for a warm worker before a dedicated recorder starts "
                                 "(0: no fleet, every recording on a dedicated recorder at once)")
CLOUDREC_RUN_DIR = _declare("CLOUDREC_RUN_DIR", PATH, str(PROJECT_ROOT / ".run"), (API, RECORDER, STACK),
                            "where local state, logs and recorders' work files go", shown="`.run` in the checkout")
CLOUDREC_REGIONS = _declare("CLOUDREC_REGIONS", NAMES, ",".join(TRTC_REGIONS), (API,),
                            "the regions (`X-TC-Region`) the API answers for")
CLOUDREC_STORAGE_ENDPOINT = _declare(
    "CLOUDREC_STORAGE_ENDPOINT", _optional(URL), "", (API, RECORDER),
    "the S3 endpoint every storage vendor (COS, S3) is reached at, instead of the vendor's own",
    shown="CLOUDREC_AWS_ENDPOINT if set, else the vendor's own")
CLOUDREC_HEARTBEAT_S = _declare("CLOUDREC_HEARTBEAT_S", SECONDS, "5", (RECORDER,),
                                "how often a recorder renews its lease on its task")
CLOUDREC_LEASE_S = _declare("CLOUDREC_LEASE_S", SECONDS, "20", (RECORDER,),
                            "how long a lease lasts unrenewed before the task is taken over")
CLOUDREC_LAUNCH_GRACE_S = _declare(
    "CLOUDREC_LAUNCH_GRACE_S", SECONDS, "30", (API,),
    "how long a launched recorder has to take its task's lease before another is launched",
    shown="`30` (`180` with CLOUDREC_LAUNCHER=ecs)")
CLOUDREC_MAX_HA = _declare("CLOUDREC_MAX_HA", COUNT, "3", (API,),
                           "failovers a task may have; one more ends it (302, LeaveCode 3)")
CLOUDREC_ECS_CLUSTER = _declare("CLOUDREC_ECS_CLUSTER", TEXT, "cloudrec", (API,),
                                "the ECS cluster recorders run in (CLOUDREC_LAUNCHER=ecs)")
CLOUDREC_ECS_TASK_DEFINITION = _declare("CLOUDREC_ECS_TASK_DEFINITION", TEXT, "cloudrec-recorder", (API,),
                                        "the recorder's Fargate task definition")
CLOUDREC_ECS_CONTAINER = _declare("CLOUDREC_ECS_CONTAINER", TEXT, "recorder", (API,),
                                  "the container of that task definition that is told its task")
CLOUDREC_ECS_SUBNETS = _declare("CLOUDREC_ECS_SUBNETS", NAMES, "", (API,), "the subnets recorders run in")
CLOUDREC_ECS_SECURITY_GROUPS = _declare("CLOUDREC_ECS_SECURITY_GROUPS", NAMES, "", (API,),
                                        "the security groups of recorders")
CLOUDREC_ECS_PUBLIC_IP = _declare("CLOUDREC_ECS_PUBLIC_IP", _choice("ENABLED", "DISABLED"), "ENABLED", (API,),
                                  "whether a recorder's Fargate task gets a public address")
CLOUDREC_ALLOW_PRIVATE_URLS = _declare(
    "CLOUDREC_ALLOW_PRIVATE_URLS", FLAG, "0", (API, RECORDER),
    "whether image and callback URLs may reach loopback, private and link-local addresses",
    shown="`0` (local stack: `1`)")
CLOUDREC_VOD_ENDPOINT = _declare(
    "CLOUDREC_VOD_ENDPOINT", URL, "https://vod.tencentcloudapi.com", (API, STACK),
    "the Tencent VOD API 3.0 endpoint of CloudVod tasks",
    shown="`https://vod.tencentcloudapi.com` (local stack: its VOD stand-in)")
CLOUDREC_CALLBACK_BACKOFF_S = _declare("CLOUDREC_CALLBACK_BACKOFF_S", SECONDS, "10", (API,),
                                       "the first retry delay of an undelivered callback; it doubles up to 5 min")
CLOUDREC_MP4_SPLIT_BYTES = _declare("CLOUDREC_MP4_SPLIT_BYTES", POSITIVE, str(2 * 1024 ** 3), (API,),
                                    "an MP4/AAC output file is split before it reaches this size",
                                    shown="`2147483648` (2 GiB)")
CLOUDREC_BACKUP_KEEP_S = _declare("CLOUDREC_BACKUP_KEEP_S", SECONDS, str(7 * 86400), (API, RECORDER),
                                  "how long files the customer's storage refused are kept in the internal bucket",
                                  shown="`604800` (7 days)")
CLOUDREC_AUTH_FAILURE_LIMIT = _declare("CLOUDREC_AUTH_FAILURE_LIMIT", COUNT, "20", (API,),
                                       "failed authentications per source and 10 s before it is refused (0: no limit)")
CLOUDREC_KMS_KEY_ID = _declare("CLOUDREC_KMS_KEY_ID", TEXT, "", (API, RECORDER),
                               "the KMS key that seals customers' storage keys in the task store (AWS)")
CLOUDREC_SEAL_KEY = _declare("CLOUDREC_SEAL_KEY", SEAL_KEY, "", (API, RECORDER, STACK),
                             "seals customers' storage keys without KMS (locally)",
                             shown="none (local stack: a new random key at each start)", secret=True)
CLOUDREC_SEAL_KEY_TASK = _declare("CLOUDREC_SEAL_KEY_TASK", TEXT, "", (RECORDER,),
                                  "set by a recorder's keeper: CLOUDREC_SEAL_KEY is this task's own key")
CLOUDREC_COLD_START_S = _declare(
    "CLOUDREC_COLD_START_S", SECONDS_OR_ZERO, "0", (API,),
    "with CLOUDREC_LAUNCHER=local: a wait before each dedicated recorder starts, standing in for "
    "Fargate's cold start (tests, benches)")
CLOUDREC_WORKER_CAPACITY = _declare(
    "CLOUDREC_WORKER_CAPACITY", _optional(CORES), "", (RECORDER,),
    "the vCPUs a warm worker may fill with recordings (their measured costs)",
    shown="none: the worker's CPUs (local stack: the machine's, shared by its workers)")
CLOUDREC_WORKER_HEADROOM = _declare("CLOUDREC_WORKER_HEADROOM", FRACTION, "0.2", (RECORDER,),
                                    "the share of a worker's capacity it keeps free")
CLOUDREC_FLEET = _declare("CLOUDREC_FLEET", TEXT, "cloudrec", (RECORDER,),
                          "the fleet a warm worker's metrics name (AWS: the stack's), so each fleet scales on its own",
                          shown="`cloudrec` (AWS: the stack's name)")
CLOUDREC_WORKER_ID = _declare("CLOUDREC_WORKER_ID", TEXT, "", (RECORDER,),
                              "a warm worker's name in its tasks' launch handles (set by the local stack)",
                              shown="none (AWS: its ECS task ARN)")
CLOUDREC_RECORDER_ROLE_ARN = _declare("CLOUDREC_RECORDER_ROLE_ARN", TEXT, "", (RECORDER,),
                                      "the scoped role a recorder's keeper assumes for its one task",
                                      shown="none (local stack: the AWS emulation's role)")
CLOUDREC_CONSOLE_KEY = _declare(
    "CLOUDREC_CONSOLE_KEY", TEXT, "", (API, STACK),
    "the operators' key to the console at `/console` (unset: no console); AWS: the ConsoleKey parameter",
    shown="none (local stack: a random key kept in `.run/console-key`)", secret=True)

# one recorder process (set by its launcher, or by the recorder for its shards, unless noted)
CLOUDREC_TASK_ID = _declare("CLOUDREC_TASK_ID", TEXT, "", (RECORDER,), "the task a recorder records")
CLOUDREC_HA_INDEX = _declare("CLOUDREC_HA_INDEX", COUNT, "0", (RECORDER,),
                             "which of the task's recorders it is (0, then 1… after failovers)")
CLOUDREC_SHARD = _declare("CLOUDREC_SHARD", COUNT, "0", (RECORDER,),
                          "0: the task's recorder; 1…: a shard process of a big task")
CLOUDREC_SEGMENT_S = _declare("CLOUDREC_SEGMENT_S", SECONDS, "12", (RECORDER,), "the HLS segment length, as TRTC's")
CLOUDREC_DRAIN_S = _declare("CLOUDREC_DRAIN_S", SECONDS, "120", (RECORDER,),
                            "how long a stopping recorder keeps uploading")
CLOUDREC_STREAMS_PER_PROCESS = _declare("CLOUDREC_STREAMS_PER_PROCESS", POSITIVE, "16", (RECORDER,),
                                        "streams one process records before a task spreads over another")
CLOUDREC_MAX_PROCESSES = _declare("CLOUDREC_MAX_PROCESSES", POSITIVE, "4", (RECORDER,),
                                  "processes a task spreads over at most")
CLOUDREC_MIX_PRESET = _declare("CLOUDREC_MIX_PRESET", _choice(*X264_PRESETS), "veryfast", (RECORDER,),
                               "the x264 preset of mixed recordings")
CLOUDREC_RECORDER_USER = _declare("CLOUDREC_RECORDER_USER", _optional(COUNT), "", (RECORDER,),
                                  "the uid a keeper that runs as root runs its recorder as (set by the image)",
                                  shown="none (the image: `65534`)")

# the local stack (`make run`): its servers, and the development app it registers
CLOUDREC_API_PORT = _declare("CLOUDREC_API_PORT", PORT, "8000", (STACK,), "the API's port")
CLOUDREC_AWS_PORT = _declare("CLOUDREC_AWS_PORT", PORT, "5000", (STACK,), "the AWS emulation's port")
CLOUDREC_WARM_WORKERS = _declare("CLOUDREC_WARM_WORKERS", COUNT, "2", (STACK,),
                                 "warm recorder workers the local stack runs (0: every recording starts cold)")
CLOUDREC_VOD_PORT = _declare("CLOUDREC_VOD_PORT", PORT, "8090", (STACK,), "the VOD stand-in's port",
                             shown="`8090` (no stand-in when CLOUDREC_VOD_ENDPOINT is set)")
CLOUDREC_JANUS_URL = _declare("CLOUDREC_JANUS_URL", _optional(URL), "", (STACK,),
                              "a Janus of your own (its HTTP API, `…/janus`) for the development app",
                              shown="none: the stack starts Janus")
CLOUDREC_JANUS_HTTP_PORT = _declare("CLOUDREC_JANUS_HTTP_PORT", PORT, "8088", (STACK,),
                                    "the port of the started Janus's HTTP API")
CLOUDREC_JANUS_WS_PORT = _declare("CLOUDREC_JANUS_WS_PORT", PORT, "8188", (STACK,),
                                  "the port of the started Janus's WebSocket API")
CLOUDREC_JANUS_RTP_PORTS = _declare("CLOUDREC_JANUS_RTP_PORTS", PORT_RANGE, "20000-20999", (STACK,),
                                    "the UDP ports the started Janus takes media on")
CLOUDREC_JANUS_INTERFACE = _declare("CLOUDREC_JANUS_INTERFACE", TEXT, "", (STACK,),
                                    "the network interface the started Janus's ICE may use (e.g. `v0`)",
                                    shown="none: any")
CLOUDREC_JANUS_IP = _declare("CLOUDREC_JANUS_IP", _optional(IP), "", (STACK,),
                             "the address the started Janus offers for media", shown="none: Janus chooses")
CLOUDREC_JANUS_LIB = _declare("CLOUDREC_JANUS_LIB", TEXT, "", (STACK,), "where Janus's modules are",
                              shown="found under `/usr/lib`")
CLOUDREC_JANUS_BIN = _declare("CLOUDREC_JANUS_BIN", TEXT, "janus", (STACK,), "the Janus program")
CLOUDREC_JANUS_API_SECRET = _declare("CLOUDREC_JANUS_API_SECRET", TEXT, "", (STACK,),
                                     "the API secret of the started Janus and the development app", secret=True)
CLOUDREC_JANUS_STRING_IDS = _declare("CLOUDREC_JANUS_STRING_IDS", FLAG, "1", (STACK,),
                                     "whether the development app's Janus names rooms by strings")
CLOUDREC_JANUS_ROOM_PIN = _declare("CLOUDREC_JANUS_ROOM_PIN", TEXT, "", (STACK,),
                                   "the PIN of the development app's rooms", secret=True)
CLOUDREC_JANUS_ROOM_SECRET = _declare("CLOUDREC_JANUS_ROOM_SECRET", TEXT, "", (STACK,),
                                      "the secret of the development app's rooms", secret=True)
CLOUDREC_ICE_SERVERS = _declare("CLOUDREC_ICE_SERVERS", ICE_SERVERS, "[]", (STACK,),
                                "the development app's STUN/TURN servers")
CLOUDREC_SDKAPPID = _declare("CLOUDREC_SDKAPPID", POSITIVE, "1400000001", (STACK,), "the development app's SdkAppId")
CLOUDREC_SECRET_ID = _declare("CLOUDREC_SECRET_ID", TEXT, "AKIDLOCALDEV", (STACK,),
                              "the development app's SecretId")
CLOUDREC_SECRET_KEY = _declare("CLOUDREC_SECRET_KEY", TEXT, "local-dev-secret", (STACK,),
                               "the development app's SecretKey", secret=True)
CLOUDREC_USERSIG_KEY = _declare("CLOUDREC_USERSIG_KEY", TEXT, "local-dev-usersig-key", (STACK,),
                                "the development app's UserSig key", secret=True)
CLOUDREC_CALLBACK_URL = _declare("CLOUDREC_CALLBACK_URL", _optional(URL), "", (STACK,),
                                 "the development app's callback URL")
CLOUDREC_CALLBACK_KEY = _declare("CLOUDREC_CALLBACK_KEY", TEXT, "", (STACK,),
                                 "the development app's callback key", secret=True)
CLOUDREC_QPS = _declare("CLOUDREC_QPS", POSITIVE, "20", (STACK,),
                        "the development app's requests per second and action")
CLOUDREC_MAX_CONCURRENT = _declare("CLOUDREC_MAX_CONCURRENT", POSITIVE, "100", (STACK,),
                                   "the development app's concurrent tasks")
CLOUDREC_LOCAL_RETRY_S = _declare("CLOUDREC_LOCAL_RETRY_S", SECONDS_OR_ZERO, "10", (STACK,),
                                  "the event pump's delay before a failed S3 notification is handled again")
CLOUDREC_LOCAL_SCHEDULE_S = _declare("CLOUDREC_LOCAL_SCHEDULE_S", SECONDS, "15", (STACK,),
                                     "how often the event pump runs the scheduled functions (AWS: each minute)")

CLOUDREC_IN_NETNS = _declare("CLOUDREC_IN_NETNS", TEXT, "", (TESTS,),
                             "set by the test suite in the network namespace it runs media tests in")


def check(env: Mapping[str, str]) -> None:
    """Raise ConfigError naming every declared variable in `env` whose value is not what it must be."""
    problems = []
    for var in VARIABLES:
        try:
            var.get(env)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))


def unknown(env: Mapping[str, str]) -> list[str]:
    """The CLOUDREC_* names in `env` that nothing reads (a misspelt variable, say)."""
    declared = {var.name for var in VARIABLES}
    return sorted(name for name in env if name.startswith("CLOUDREC_") and name not in declared)


@dataclass(frozen=True)
class Settings:
    """Names of the AWS resources, the launcher and the recorder's timing."""

    aws_endpoint: str | None
    aws_region: str
    tasks_table: str
    apps_table: str
    limits_table: str
    events_queue: str
    outputs_dlq: str  # the output function's on-failure destination
    idempotency_table: str
    internal_bucket: str
    launcher: str  # "local" | "ecs"
    run_dir: Path
    regions: tuple[str, ...]
    storage_endpoint: str | None
    heartbeat_s: float
    lease_s: float
    launch_grace_s: float
    max_ha: int
    ecs_cluster: str
    ecs_task_definition: str
    ecs_container: str
    ecs_subnets: tuple[str, ...]
    ecs_security_groups: tuple[str, ...]
    ecs_public_ip: bool
    allow_private_urls: bool  # layout/watermark images may come from private addresses
    vod_endpoint: str  # Tencent VOD API 3.0 endpoint (scheme://host[:port])
    callback_backoff_s: float  # first retry delay of an undelivered callback; doubles up to 5 min
    mp4_split_bytes: int  # an MP4/AAC file is split before it reaches this size (2 GB)
    backup_keep_s: float  # files the customer's storage refused are kept in backup this long (7 days)
    auth_failure_limit: int  # failed authentications per source and 10 s before it is refused (0: no limit)
    kms_key_id: str  # seals the customer's storage keys in the task store (AWS)
    seal_key: str = field(repr=False, default="")  # base64, 32 bytes: seals them locally instead
    seal_key_task: str = ""  # set: seal_key is this task's own key (a recorder's), not the stack's
    recorder_role_arn: str = ""  # the scoped role a recorder's keeper assumes for it (recorder_access.py)
    dispatch_queue: str = "cloudrec-dispatch"  # recordings waiting for a warm worker (dispatch.py)
    fallback_queue: str = "cloudrec-dispatch-fallback"  # an unclaimed one goes cold from here
    claim_wait_s: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings in `env` (default: this process's environment); ConfigError for a bad value."""
        e = os.environ if env is None else env
        launcher = CLOUDREC_LAUNCHER.get(e)
        endpoint = CLOUDREC_AWS_ENDPOINT.get(e)
        return cls(
            aws_endpoint=endpoint,
            aws_region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",  # AWS's own variables
            tasks_table=CLOUDREC_TASKS_TABLE.get(e),
            apps_table=CLOUDREC_APPS_TABLE.get(e),
            limits_table=CLOUDREC_LIMITS_TABLE.get(e),
            events_queue=CLOUDREC_EVENTS_QUEUE.get(e),
            outputs_dlq=CLOUDREC_OUTPUTS_DLQ.get(e),
            idempotency_table=CLOUDREC_IDEMPOTENCY_TABLE.get(e),
            internal_bucket=CLOUDREC_INTERNAL_BUCKET.get(e),
            launcher=launcher,
            run_dir=CLOUDREC_RUN_DIR.get(e),
            regions=CLOUDREC_REGIONS.get(e),
            storage_endpoint=CLOUDREC_STORAGE_ENDPOINT.get(e) or endpoint,
            heartbeat_s=CLOUDREC_HEARTBEAT_S.get(e),
            lease_s=CLOUDREC_LEASE_S.get(e),
            launch_grace_s=CLOUDREC_LAUNCH_GRACE_S.get(e, default="180" if launcher == "ecs" else None),
            max_ha=CLOUDREC_MAX_HA.get(e),
            ecs_cluster=CLOUDREC_ECS_CLUSTER.get(e),
            ecs_task_definition=CLOUDREC_ECS_TASK_DEFINITION.get(e),
            ecs_container=CLOUDREC_ECS_CONTAINER.get(e),
            ecs_subnets=CLOUDREC_ECS_SUBNETS.get(e),
            ecs_security_groups=CLOUDREC_ECS_SECURITY_GROUPS.get(e),
            ecs_public_ip=CLOUDREC_ECS_PUBLIC_IP.get(e) == "ENABLED",
            allow_private_urls=CLOUDREC_ALLOW_PRIVATE_URLS.get(e),
            vod_endpoint=CLOUDREC_VOD_ENDPOINT.get(e),
            callback_backoff_s=CLOUDREC_CALLBACK_BACKOFF_S.get(e),
            mp4_split_bytes=CLOUDREC_MP4_SPLIT_BYTES.get(e),
            backup_keep_s=CLOUDREC_BACKUP_KEEP_S.get(e),
            auth_failure_limit=CLOUDREC_AUTH_FAILURE_LIMIT.get(e),
            kms_key_id=CLOUDREC_KMS_KEY_ID.get(e),
            seal_key=CLOUDREC_SEAL_KEY.get(e),
            seal_key_task=CLOUDREC_SEAL_KEY_TASK.get(e),
            recorder_role_arn=CLOUDREC_RECORDER_ROLE_ARN.get(e),
            dispatch_queue=CLOUDREC_DISPATCH_QUEUE.get(e),
            fallback_queue=CLOUDREC_FALLBACK_QUEUE.get(e),
            claim_wait_s=CLOUDREC_CLAIM_WAIT_S.get(e),
        )


# The README's table, between these two lines
TABLE_BEGIN = "<!-- configuration table: made by `python -m chalicelib.config --readme`, do not edit -->"
TABLE_END = "<!-- end of the configuration table -->"


def markdown_table() -> str:
    """Every variable as a row of the README's "Configuration" table."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| variable | default | read by | value | what it sets |", "|---|---|---|---|---|"]
    for var in VARIABLES:
        default = var.shown or (f"`{var.default}`" if var.default else "none")
        rows.append("| " + " | ".join(cell(c) for c in (f"`{var.name}`", default, ", ".join(var.readers),
                                                          var.kind.expected, var.doc)) + " |")
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """`readme` with the current table between its markers."""
    before, begin, rest = readme.partition(TABLE_BEGIN + "\n")
    _, end, after = rest.partition(TABLE_END)
    if not begin or not end:
        raise ValueError(f"the README has no {TABLE_BEGIN!r} … {TABLE_END!r} block")
    return before + begin + markdown_table() + end + after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cloudrec's CLOUDREC_* variables")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the README's configuration table")
    what.add_argument("--readme", action="store_true", help="rewrite that table in README.md")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        README.write_text(with_table(README.read_text()))
        print(f"wrote the configuration table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
