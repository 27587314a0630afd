"""URLs customers give may not reach into our own network unless the deployment allows it."""

from __future__ import annotations

import ipaddress

import pytest

from chalicelib.fetch import AddressPolicy, FetchError, address_policy, check_url, is_public, redact

PUBLIC_ONLY = address_policy(False)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.0.9", "169.254.169.254", "255.255.255.255",
    "0.0.0.0",  # noqa: S104 (an address to judge, not one to bind)
    "100.64.0.1", "100.127.255.254",  # CGNAT: not private, not global either
    "198.18.0.1", "192.0.2.1", "240.0.0.1", "224.0.0.1", "239.255.255.250",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:127.0.0.1",  # IPv4-mapped
    "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1",  # NAT64 and 6to4 to the metadata service
])
def test_addresses_that_are_not_globally_routable_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_globally_routable_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.png", "http://10.1.2.3/x.png", "http://192.168.0.9/x.png", "http://169.254.169.254/x.png",
    "http://100.64.0.1/x.png", "http://[::1]/x.png", "http://[::ffff:a9fe:a9fe]/x.png", "http://0.0.0.0/x.png",
    "ftp://example.com/x.png", "file:///etc/passwd", "http://example.com:99999/x.png",
])
def test_private_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(FetchError):
        check_url(url, PUBLIC_ONLY)


def test_public_addresses_pass_and_private_ones_when_allowed() -> None:
    target = check_url("https://8.8.8.8/logo.png?sig=1", PUBLIC_ONLY)
    assert (target.host, target.port, target.path, target.addresses) == ("8.8.8.8", 443, "/logo.png?sig=1",
                                                                         ("8.8.8.8",))
    assert check_url("http://127.0.0.1:8080/logo.png", address_policy(True)).addresses == ("127.0.0.1",)
    with pytest.raises(FetchError):
        check_url("file:///etc/passwd", address_policy(True))


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    answers = {"cdn.example.com": ["93.184.216.34"], "mixed.example.com": ["93.184.216.34", "10.0.0.7"],
               "cgnat.example.com": ["100.64.3.4"], "mapped.example.com": ["::ffff:169.254.169.254"]}
    policy = AddressPolicy(resolve=lambda host, port: answers[host])
    assert check_url("https://cdn.example.com/a.png", policy).addresses == ("93.184.216.34",)
    for host in ("mixed.example.com", "cgnat.example.com", "mapped.example.com"):
        with pytest.raises(FetchError, match="private or local"):
            check_url(f"https://{host}/a.png", policy)


def test_logged_urls_keep_no_query() -> None:
    assert redact("https://bucket.s3.amazonaws.com:443/a/b.png?X-Amz-Signature=secret#f") == \
        "https://bucket.s3.amazonaws.com/a/b.png"
