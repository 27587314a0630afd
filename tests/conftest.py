"""Shared fixtures: AWS (moto in-process) with cloudrec's resources, and a registered app."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

from chalicelib import aws, config, wiring
from chalicelib.apps import App, AppRegistry, RoomBackend
from chalicelib.config import Settings
from chalicelib.schema import create_resources
from tests.support.callback_receiver import CallbackReceiver
from tests.support.moto_app import SDKAPPID, SECRET_ID, SECRET_KEY, USERSIG_KEY


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """moto in-process with every table, queue and bucket created."""
    for name in list(os.environ):
        if name.startswith("CLOUDREC_") or name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # the customer endpoints of these tests listen on 127.0.0.1, as the local stack allows
    monkeypatch.setenv("CLOUDREC_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("CLOUDREC_LAUNCH_GRACE_S", "30")
    monkeypatch.setenv("CLOUDREC_CLAIM_WAIT_S", "0")  # a dedicated recorder at once (tests/functional/test_dispatch.py: the fleet)
    with mock_aws():
        wiring.reset()
        settings = aws.settings()
        create_resources(settings, aws.client("dynamodb"), aws.client("sqs"), aws.client("s3"))
        yield settings
    wiring.reset()


@pytest.fixture
def registry(aws_env: Settings) -> AppRegistry:
    reg = wiring.app_registry()
    reg.put_app(App(sdkappid=SDKAPPID, usersig_key=USERSIG_KEY,
                    room=RoomBackend(janus_url="http://127.0.0.1:9/janus"),
                    callback_url="", qps=20, max_concurrent=3), SECRET_ID, SECRET_KEY)
    return reg

@pytest.fixture
def receiver(registry: AppRegistry) -> Iterator[CallbackReceiver]:
    """The test app's callback endpoint (key "cbkey123")."""
    rx = CallbackReceiver("cbkey123")
    url = rx.start()
    app = registry.get_app(SDKAPPID)
    assert app is not None
    registry.put_app(App(**{**app.__dict__, "callback_url": url, "callback_key": "cbkey123"}),
                     SECRET_ID, SECRET_KEY)
    yield rx
    rx.server.shutdown()

# tests/media move WebRTC media: they run only inside a network namespace, started by
# tests/e2e/test_media_in_netns.py (which sets CLOUDREC_IN_NETNS).
collect_ignore = [] if config.CLOUDREC_IN_NETNS.get(os.environ) else ["media"]
