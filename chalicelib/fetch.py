"""Reaching URLs that customers give (layout images, callback endpoints) without letting them
reach into our own network. A host name is resolved once; every address it gave must be
public (globally routable) unless the deployment allows private ones (the local stack does,
CLOUDREC_ALLOW_PRIVATE_URLS=1); the connection goes to an address that was checked, so a name
that answers differently the second time (DNS rebinding) is never asked twice. A redirect is
a new URL, checked like the first; the whole fetch ends at its deadline however slowly the
server answers."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

MAX_BYTES = 5 * 1024 * 1024  # TRTC's limit for layout and watermark images
DEADLINE_S = 10.0  # one image, redirects included
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]  # (host, port) → its addresses
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class FetchError(Exception):
    """The URL could not be fetched (refused address, HTTP error, too large, too slow)."""


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or int(ip) >> 32 == 0:  # ::a.b.c.d, and :: and ::1 with it
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, CGNAT (100.64/10),
    reserved, documentation or multicast. An IPv6 address that carries an IPv4 one is
    judged by the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and (carried := _carried_ipv4(ip)) is not None:
        ip = carried
    return ip.is_global and not ip.is_multicast


def _anywhere(ip: IPAddress) -> bool:
    return True


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses customer URLs may reach (`permits`) and how host names are resolved.
    Tests inject both: a local server standing in for a public one, a resolver that changes
    its answer."""

    permits: Callable[[IPAddress], bool] = is_public
    resolve: Resolver = system_resolver


def address_policy(allow_private: bool) -> AddressPolicy:
    """The deployment's rule: public addresses only, or anywhere (the local stack)."""
    return AddressPolicy(_anywhere if allow_private else is_public)


def redact(url: str) -> str:
    """scheme://host/path of a URL, for logs: a presigned URL carries secrets in its query."""
    try:
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    except ValueError:
        return "<unparsable URL>"


@dataclass(frozen=True)
class Target:
    """Where a URL leads: its host resolved once, each of its addresses checked."""

    scheme: str
    host: str
    port: int
    path: str  # with the query
    addresses: tuple[str, ...]


def check_url(url: str, policy: AddressPolicy) -> Target:
    """The checked target of an http(s) URL; FetchError if any address of its host is refused
    (a name with one private answer among public ones is refused whole)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError("not a valid URL") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise FetchError("not an http(s) URL")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = tuple(policy.resolve(host, port))
        refused = [a for a in addresses if not policy.permits(ipaddress.ip_address(a))]
    except (OSError, ValueError):  # UnicodeError (an odd name) is a ValueError
        raise FetchError(f"cannot resolve {host}") from None
    if not addresses:
        raise FetchError(f"cannot resolve {host}")
    if refused:
        raise FetchError(f"{host} resolves to a private or local address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses)


def _left(ends_at: float) -> float:
    return max(0.001, ends_at - time.monotonic())


class _Watch:
    """The sockets a connection opened, shut when its deadline passes. A socket, not the
    connection: http.client hands its socket over to a response that reads to the close."""

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False

    def connect(self, addresses: Sequence[str], port: int) -> socket.socket:
        error: OSError = ConnectionError("no address")
        for address in addresses:
            try:
                sock = socket.create_connection((address, port), timeout=_left(self.ends_at))
            except OSError as exc:
                error = exc
                continue
            with self._lock:
                if self._expired:
                    sock.close()
                    raise TimeoutError("the deadline passed while connecting")
                self._sockets.append(sock)
            return sock
        raise error

    def expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address checked for the host (the name is not resolved again); the Host
    header still names the host."""

    def __init__(self, target: Target, watch: _Watch) -> None:
        super().__init__(target.host, target.port, timeout=_left(watch.ends_at))
        self._addresses, self._watch = target.addresses, watch

    def connect(self) -> None:
        self.sock = self._watch.connect(self._addresses, self.port)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS likewise; SNI and the certificate check use the host name, not the address."""

    def __init__(self, target: Target, watch: _Watch) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=_left(watch.ends_at), context=self._tls)
        self._addresses, self._watch = target.addresses, watch

    def connect(self) -> None:
        raw = self._watch.connect(self._addresses, self.port)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except OSError:
            raw.close()
            raise


@contextmanager
def connection(target: Target, ends_at: float) -> Iterator[http.client.HTTPConnection]:
    """A connection to `target` that connects only to its checked addresses and is cut off at
    `ends_at` (time.monotonic): a server that trickles its answer a byte at a time never trips
    a socket timeout. A read cut off this way can look like the end of a body: check the time
    after it."""
    watch = _Watch(ends_at)
    conn: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(target, watch) if target.scheme == "https" else _PinnedHTTPConnection(target, watch))
    timer = threading.Timer(max(0.0, ends_at - time.monotonic()), watch.expire)
    timer.daemon = True
    timer.start()
    try:
        yield conn
    finally:
        timer.cancel()
        conn.close()


def fetch(url: str, policy: AddressPolicy, deadline_s: float = DEADLINE_S, max_bytes: int = MAX_BYTES) -> bytes:
    """The body of `url` (at most `max_bytes`) within `deadline_s` in all, following at most
    three redirects, each checked like the first URL."""
    ends_at = time.monotonic() + deadline_s
    for _ in range(MAX_REDIRECTS + 1):
        body, location = _get(check_url(url, policy), ends_at, max_bytes)
        if location is None:
            return body
        url = urllib.parse.urljoin(url, location)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _get(target: Target, ends_at: float, max_bytes: int) -> tuple[bytes, str | None]:
    """(body, None), or (b"", where a redirect leads)."""
    body, location = b"", None
    try:
        with connection(target, ends_at) as conn:
            conn.request("GET", target.path, headers={"User-Agent": "cloudrec"})
            response = conn.getresponse()
            if response.status in REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"HTTP {response.status} without a Location")
            elif response.status != 200:
                raise FetchError(f"HTTP {response.status}")
            elif response.length is not None and response.length > max_bytes:
                raise FetchError(f"larger than {max_bytes} bytes")
            else:
                body = response.read(max_bytes + 1)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: a path http.client cannot send
        if time.monotonic() < ends_at:
            raise FetchError(f"download failed: {type(exc).__name__}") from None
    if time.monotonic() >= ends_at:
        raise FetchError("no whole answer within the deadline")
    if len(body) > max_bytes:
        raise FetchError(f"larger than {max_bytes} bytes")
    return body, location
