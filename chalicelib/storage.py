"""The customer's storage (CloudStorage): Tencent COS through its S3-compatible endpoint
(Vendor 0) or AWS S3 (Vendor 1), with the keys the task carries. In local mode every vendor
is reached at CLOUDREC_STORAGE_ENDPOINT (the AWS emulation by default)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings
from chalicelib.models import CloudStorage

COS, AWS = 0, 1


def endpoint_for(storage: CloudStorage, settings: Settings) -> str | None:
    if settings.storage_endpoint:
        return settings.storage_endpoint
    if storage.Vendor == COS:
        return f"https://cos.{storage.Region}.myqcloud.com"
    return None


def storage_client(storage: CloudStorage, settings: Settings) -> Any:
    """An S3 client for the task's bucket (its own credentials; retries left to the caller)."""
    endpoint = endpoint_for(storage, settings)
    style = "path" if settings.storage_endpoint else ("virtual" if storage.Vendor == COS else "auto")
    return boto3.client(
        "s3",
        region_name=storage.Region,
        endpoint_url=endpoint,
        aws_access_key_id=storage.AccessKey.get_secret_value(),
        aws_secret_access_key=storage.SecretKey.get_secret_value(),
        # COS rejects the default checksums of boto3 >= 1.36 (trailer-signed streaming uploads)
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30,
                      request_checksum_calculation="when_required", response_checksum_validation="when_required",
                      s3={"addressing_style": style}),
    )
