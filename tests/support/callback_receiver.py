"""A customer's callback endpoint for tests: a local HTTP server that keeps every POST and
checks its `Sign` against the callback key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class CallbackReceiver:
    key: str
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200  # what it answers: anything but 200 makes the sender retry
    accepted: list[bytes] = field(default_factory=list)  # bodies answered with 200, in arrival order
    delay_s: float = 0.0  # how long it takes to answer (a slow receiver)

    def start(self) -> str:
        """Serve on 127.0.0.1 in a thread; return the URL to register as callback URL."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((dict(self.headers.items()), body))
                time.sleep(outer.delay_s)
                status = outer.status
                if status == 200:
                    outer.accepted.append(body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"code":0}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}/trtc/callback"

    def signed(self, headers: dict[str, str], body: bytes) -> bool:
        expected = base64.b64encode(hmac.new(self.key.encode(), body, hashlib.sha256).digest()).decode()
        return headers.get("Sign") == expected

    @property
    def bad_signatures(self) -> int:
        return sum(not self.signed(h, b) for h, b in self.posts)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Bodies of the posts that were taken (answered 200) and carry a valid Sign."""
        return [json.loads(b) for h, b in self.posts if self.signed(h, b)]
