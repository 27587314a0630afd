"""Callback URLs are customer URLs too: no private targets unless the deployment allows them,
and the POST goes to the address that was checked."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from chalicelib import aws
from chalicelib.callbacks import CallbackError, Post, send
from chalicelib.fetch import AddressPolicy, IPAddress, is_public
from tests.support.callback_receiver import CallbackReceiver


@pytest.fixture
def endpoint() -> Iterator[CallbackReceiver]:
    rx = CallbackReceiver("cbkey123")
    rx.start()
    yield rx
    rx.server.shutdown()
    rx.server.server_close()


def test_a_private_callback_url_is_refused_unless_the_deployment_allows_it(
        endpoint: CallbackReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    post = Post(f"http://127.0.0.1:{endpoint.server.server_port}/cb", b"{}", {"SdkAppId": "1"})
    monkeypatch.setenv("CLOUDREC_ALLOW_PRIVATE_URLS", "0")
    aws.settings.cache_clear()
    with pytest.raises(CallbackError, match="refused"):
        send(post, deadline_s=1)
    assert endpoint.posts == []
    monkeypatch.setenv("CLOUDREC_ALLOW_PRIVATE_URLS", "1")  # the local stack
    aws.settings.cache_clear()
    send(post, deadline_s=1)
    assert len(endpoint.posts) == 1


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    policy = AddressPolicy(resolve=lambda host, port: ["10.0.0.8"])
    with pytest.raises(CallbackError, match="private or local"):
        send(Post("https://hooks.example.com/cb", b"{}", {}), deadline_s=1, policy=policy)


def test_the_post_goes_to_the_address_that_was_checked(endpoint: CallbackReceiver) -> None:
    """DNS rebinding: the name answers with a (stand-in) public address, then an internal one."""
    stand_in = ipaddress.ip_address("127.0.0.1")
    answers = iter(["127.0.0.1", "127.0.0.2"])

    def permits(ip: IPAddress) -> bool:
        return ip == stand_in or is_public(ip)

    port = endpoint.server.server_port
    send(Post(f"http://hooks.test:{port}/cb", b"{}", {"SdkAppId": "1"}), deadline_s=1,
         policy=AddressPolicy(permits, lambda host, port: [next(answers)]))
    (headers, _), = endpoint.posts
    assert headers["Host"] == f"hooks.test:{port}" and headers["SdkAppId"] == "1"
