"""Deployment settings, read once from the environment (CLOUDREC_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TRTC_REGIONS = ("ap-beijing", "ap-guangzhou", "ap-mumbai", "ap-shanghai", "ap-singapore")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        launcher = e.get("CLOUDREC_LAUNCHER", "local")
        endpoint = e.get("CLOUDREC_AWS_ENDPOINT") or None
        return cls(
            aws_endpoint=endpoint,
            aws_region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            tasks_table=e.get("CLOUDREC_TASKS_TABLE", "cloudrec-tasks"),
            apps_table=e.get("CLOUDREC_APPS_TABLE", "cloudrec-apps"),
            limits_table=e.get("CLOUDREC_LIMITS_TABLE", "cloudrec-limits"),
            events_queue=e.get("CLOUDREC_EVENTS_QUEUE", "cloudrec-events.fifo"),
            outputs_dlq=e.get("CLOUDREC_OUTPUTS_DLQ", "cloudrec-outputs-dlq"),
            idempotency_table=e.get("CLOUDREC_IDEMPOTENCY_TABLE", "cloudrec-idempotency"),
            internal_bucket=e.get("CLOUDREC_INTERNAL_BUCKET", "cloudrec-internal"),
            launcher=launcher,
            run_dir=Path(e.get("CLOUDREC_RUN_DIR", str(PROJECT_ROOT / ".run"))),
            regions=_csv(e.get("CLOUDREC_REGIONS", ",".join(TRTC_REGIONS))),
            storage_endpoint=e.get("CLOUDREC_STORAGE_ENDPOINT") or endpoint,
            heartbeat_s=float(e.get("CLOUDREC_HEARTBEAT_S", "5")),
            lease_s=float(e.get("CLOUDREC_LEASE_S", "20")),
            launch_grace_s=float(e.get("CLOUDREC_LAUNCH_GRACE_S", "180" if launcher == "ecs" else "30")),
            max_ha=int(e.get("CLOUDREC_MAX_HA", "3")),
            ecs_cluster=e.get("CLOUDREC_ECS_CLUSTER", "cloudrec"),
            ecs_task_definition=e.get("CLOUDREC_ECS_TASK_DEFINITION", "cloudrec-recorder"),
            ecs_container=e.get("CLOUDREC_ECS_CONTAINER", "recorder"),
            ecs_subnets=_csv(e.get("CLOUDREC_ECS_SUBNETS", "")),
            ecs_security_groups=_csv(e.get("CLOUDREC_ECS_SECURITY_GROUPS", "")),
            ecs_public_ip=e.get("CLOUDREC_ECS_PUBLIC_IP", "ENABLED") == "ENABLED",
            allow_private_urls=e.get("CLOUDREC_ALLOW_PRIVATE_URLS", "0") == "1",
            vod_endpoint=e.get("CLOUDREC_VOD_ENDPOINT", "https://vod.tencentcloudapi.com"),
            callback_backoff_s=float(e.get("CLOUDREC_CALLBACK_BACKOFF_S", "10")),
            mp4_split_bytes=int(e.get("CLOUDREC_MP4_SPLIT_BYTES", str(2 * 1024 ** 3))),
            backup_keep_s=float(e.get("CLOUDREC_BACKUP_KEEP_S", str(7 * 86400))),
            auth_failure_limit=int(e.get("CLOUDREC_AUTH_FAILURE_LIMIT", "20")),
            kms_key_id=e.get("CLOUDREC_KMS_KEY_ID", ""),
            seal_key=e.get("CLOUDREC_SEAL_KEY", ""),
            seal_key_task=e.get("CLOUDREC_SEAL_KEY_TASK", ""),
            recorder_role_arn=e.get("CLOUDREC_RECORDER_ROLE_ARN", ""),
        )
