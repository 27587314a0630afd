"""The local stack inside the namespace (Janus offers 10.99.0.1 on v0), with 4-second
segments and a customer bucket in the AWS emulation."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LocalStack, running_stack
from tests.netns import ADDRESS

BUCKET = "customer-bucket"
SEGMENT_S = 4.0
STREAMS_PER_PROCESS = 4  # a task with more streams spreads over worker processes


def media_env() -> dict[str, str]:
    """Janus offers the namespace's address on v0; short segments; small worker budget."""
    return {"CLOUDREC_JANUS_INTERFACE": "v0", "CLOUDREC_JANUS_IP": ADDRESS, "CLOUDREC_SEGMENT_S": str(SEGMENT_S),
            "CLOUDREC_STREAMS_PER_PROCESS": str(STREAMS_PER_PROCESS)}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert os.environ.get("CLOUDREC_IN_NETNS"), "tests/media run inside a network namespace only"
    with running_stack(tmp_path_factory.mktemp("media-stack"), **media_env()) as local:
        local.boto("s3").create_bucket(Bucket=BUCKET)
        yield local
