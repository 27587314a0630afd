"""Fetching images the customer names (background, placeholders, watermarks) without
letting a URL reach into our own network: hosts that resolve to loopback, private,
link-local or otherwise special addresses are refused unless the deployment allows them
(the local stack does, CLOUDREC_ALLOW_PRIVATE_URLS=1)."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
import urllib.request

MAX_BYTES = 5 * 1024 * 1024  # TRTC's limit for layout and watermark images
TIMEOUT_S = 10.0


class FetchError(Exception):
    """The image could not be fetched (refused address, HTTP error, too large, timeout)."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified)


def check_url(url: str, allow_private: bool) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"not an http(s) URL: {url}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        raise FetchError(f"cannot resolve {parts.hostname}") from exc
    if not all(_public(str(info[4][0])) for info in infos):
        raise FetchError(f"{parts.hostname} resolves to a private or local address")


def fetch(url: str, allow_private: bool) -> bytes:
    """The body of `url` (at most 5 MB)."""
    check_url(url, allow_private)
    request = urllib.request.Request(url, headers={"User-Agent": "cloudrec"})  # noqa: S310 (scheme checked)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (scheme checked)
            body: bytes = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise FetchError(f"download failed: {type(exc).__name__}") from exc
    if len(body) > MAX_BYTES:
        raise FetchError("image larger than 5 MB")
    return body
