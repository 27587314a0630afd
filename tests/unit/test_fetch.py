"""Images named in layouts may not reach into our own network unless allowed."""

from __future__ import annotations

import pytest

from chalicelib.fetch import FetchError, check_url


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.png", "http://10.1.2.3/x.png", "http://192.168.0.9/x.png", "http://169.254.169.254/x.png",
    "http://[::1]/x.png", "http://0.0.0.0/x.png", "ftp://example.com/x.png", "file:///etc/passwd",
])
def test_private_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(FetchError):
        check_url(url, allow_private=False)


def test_public_addresses_pass_and_private_ones_when_allowed() -> None:
    check_url("https://8.8.8.8/logo.png", allow_private=False)
    check_url("http://127.0.0.1:8080/logo.png", allow_private=True)
    with pytest.raises(FetchError):
        check_url("file:///etc/passwd", allow_private=True)
