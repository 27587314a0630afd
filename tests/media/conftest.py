"""The session's local stack for the media tests, inside the namespace."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chalicelib import config
from tests.support.media import BUCKET, media_env
from tests.support.stack import LocalStack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert config.CLOUDREC_IN_NETNS.get(os.environ), "tests/media run inside a network namespace only"
    with running_stack(tmp_path_factory.mktemp("media-stack"), **media_env()) as local:
        local.boto("s3").create_bucket(Bucket=BUCKET)
        yield local
