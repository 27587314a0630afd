"""Lazily built boto3 clients, so that moto is active before any client exists."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings

_RETRIES = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3, read_timeout=10)


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def client(service: str) -> Any:
    """This process's boto3 client for `service` (built once, from the environment's settings)."""
    return make_client(service, settings())


def make_client(service: str, s: Settings) -> Any:
    """A boto3 client for `service`, pointed at the local AWS emulation when one is configured."""
    if s.aws_endpoint and boto3.session.Session().get_credentials() is None:
        # the local AWS emulation takes any credentials
        return boto3.client(service, region_name=s.aws_region, endpoint_url=s.aws_endpoint, config=_RETRIES,
                            aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    return boto3.client(service, region_name=s.aws_region, endpoint_url=s.aws_endpoint, config=_RETRIES)


def reset() -> None:
    """Forget settings and clients (tests switch environments and moto contexts)."""
    settings.cache_clear()
    client.cache_clear()
