"""The session's local stack for the e2e tests, and a second app with small limits."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.janus_http import JanusHttp
from tests.support.sdk import LIMITED_APP, LIMITED_ID, LIMITED_KEY, LIMITED_SIG_KEY
from tests.support.stack import LocalStack, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as local:
        yield local


@pytest.fixture(scope="session")
def limited_app(stack: LocalStack) -> int:
    """An app with 5 requests/s and 2 tasks at most, registered through the admin CLI."""
    stack.admin("add-app", "--sdkappid", str(LIMITED_APP), "--secret-id", LIMITED_ID, "--secret-key", LIMITED_KEY,
                "--usersig-key", LIMITED_SIG_KEY, "--janus-url", stack.janus_url, "--room-namespace", "--qps", "5",
                "--max-concurrent", "2")
    listed = json.loads(stack.admin("list-apps"))
    assert {a["SdkAppId"] for a in listed} >= {LIMITED_APP}
    assert LIMITED_KEY not in json.dumps(listed) and LIMITED_SIG_KEY not in json.dumps(listed)
    return LIMITED_APP


@pytest.fixture
def janus(stack: LocalStack) -> Iterator[JanusHttp]:
    """A Janus HTTP session on the stack's Janus, for rooms and silent participants."""
    j = JanusHttp(stack.janus_url)
    yield j
    j.close()
