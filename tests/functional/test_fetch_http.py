"""Images fetched from hostile servers: redirects into our network, DNS rebinding, a server
that trickles its answer, one that sends too much. Real HTTP servers on loopback: 127.0.0.1
stands for a public host (the policy says so), 127.0.0.2 for one inside our network."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib.fetch import AddressPolicy, FetchError, IPAddress, fetch, is_public

PUBLIC_STAND_IN = ipaddress.ip_address("127.0.0.1")
IMAGE = b"\x89PNG not really"
SECRET = b"instance credentials"


def public_or_stand_in(ip: IPAddress) -> bool:
    return ip == PUBLIC_STAND_IN or is_public(ip)


class Server:
    """Answers by path: /img an image, /secret what must never leak, /to?<url> a redirect there,
    /hops/<n> n redirects before the image, /drip a byte every 20 ms for 3 s, /big 4 kB."""

    def __init__(self, host: str) -> None:
        self.paths: list[str] = []
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                if self.path.startswith("/to?"):
                    self._answer(302, b"", {"Location": self.path[len("/to?"):]})
                elif self.path.startswith("/hops/"):
                    left = int(self.path.rsplit("/", 1)[1])
                    self._answer(302, b"", {"Location": f"/hops/{left - 1}" if left > 1 else "/img"})
                elif self.path == "/drip":
                    self.send_response(200)
                    self.end_headers()
                    ends = time.monotonic() + 3  # without a deadline the fetch would end here, not hang the suite
                    while not outer.stop.wait(0.02) and time.monotonic() < ends:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                else:
                    body = {"/img": IMAGE, "/secret": SECRET, "/big": b"x" * 4096}.get(self.path)
                    self._answer(404 if body is None else 200, body or b"", {"Content-Length": str(len(body or b""))})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def handle(self) -> None:
                try:
                    super().handle()
                except OSError:  # the client hung up (cut off at its deadline)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer((host, 0), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_port
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def public() -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def internal() -> Iterator[Server]:
    server = Server("127.0.0.2")
    yield server
    server.close()


def policy(**answers: str) -> AddressPolicy:
    """Names resolve as given (cdn_test= answers for cdn.test); addresses as themselves."""
    table = {name.replace("_", "."): address for name, address in answers.items()}
    return AddressPolicy(public_or_stand_in, lambda host, port: [table.get(host, host)])


def test_the_stand_in_serves_images(public: Server) -> None:
    assert fetch(f"http://cdn.test:{public.port}/img", policy(cdn_test="127.0.0.1"), deadline_s=1) == IMAGE


def test_a_redirect_into_our_network_is_refused(public: Server, internal: Server) -> None:
    for target in (f"http://127.0.0.2:{internal.port}/secret", f"http://meta.test:{internal.port}/secret",
                   "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(FetchError, match="private or local"):
            fetch(f"http://127.0.0.1:{public.port}/to?{target}", policy(meta_test="127.0.0.2"), deadline_s=1)
    assert internal.paths == []  # never asked
    assert public.paths == [f"/to?{t}" for t in (f"http://127.0.0.2:{internal.port}/secret",
                                                 f"http://meta.test:{internal.port}/secret",
                                                 "http://169.254.169.254/latest/meta-data/")]


def test_a_few_redirects_are_followed_and_a_chain_is_not(public: Server) -> None:
    base = f"http://127.0.0.1:{public.port}"
    assert fetch(f"{base}/hops/3", policy(), deadline_s=1) == IMAGE
    with pytest.raises(FetchError, match="redirects"):
        fetch(f"{base}/hops/4", policy(), deadline_s=1)


def test_the_connection_goes_to_the_address_that_was_checked(public: Server, internal: Server) -> None:
    """DNS rebinding: the name answers with a public address, then with an internal one."""
    answers = iter(["127.0.0.1", "127.0.0.2"])
    rebinding = AddressPolicy(public_or_stand_in, lambda host, port: [next(answers)])
    assert fetch(f"http://cdn.test:{public.port}/img", rebinding, deadline_s=1) == IMAGE
    assert public.paths == ["/img"] and internal.paths == []


def test_a_trickling_server_is_cut_off_at_the_deadline(public: Server) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="deadline"):
        fetch(f"http://127.0.0.1:{public.port}/drip", policy(), deadline_s=0.5)
    assert time.monotonic() - started < 1.0


def test_an_answer_past_the_size_cap_is_refused(public: Server) -> None:
    with pytest.raises(FetchError, match="larger than"):
        fetch(f"http://127.0.0.1:{public.port}/big", policy(), deadline_s=1, max_bytes=4095)
    assert fetch(f"http://127.0.0.1:{public.port}/big", policy(), deadline_s=1, max_bytes=4096) == b"x" * 4096


def test_http_errors_are_fetch_errors(public: Server) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"http://127.0.0.1:{public.port}/nothing", policy(), deadline_s=1)


def self_signed(tmp_path: Path, host: str) -> ssl.SSLContext:
    """A TLS server context with a certificate for `host` that no CA vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_https_to_the_checked_address_names_the_host_and_verifies_its_certificate(tmp_path: Path) -> None:
    context, names = self_signed(tmp_path, "cdn.test"), []

    def note_name(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = note_name
    listener = socket.create_server(("127.0.0.1", 0))

    def handshake() -> None:
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (OSError, ssl.SSLError):  # the client refuses the certificate
            conn.close()

    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchError, match="SSLCertVerificationError"):
            fetch(f"https://cdn.test:{listener.getsockname()[1]}/img", policy(cdn_test="127.0.0.1"), deadline_s=1)
    finally:
        thread.join(2)
        listener.close()
    assert names == ["cdn.test"]  # SNI carries the name, not the address it was pinned to
