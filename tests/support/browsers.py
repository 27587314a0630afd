"""Real browsers for the media tests, without a driver: Debian's Chromium and Firefox ESR,
headless with fake camera and microphone, opened on a page that the test's own server serves
on 127.0.0.1 (a secure context, so getUserMedia works over plain HTTP). The pages report
what they do by POSTing JSON to the server; screenshots arrive there as PNGs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAGES = Path(__file__).resolve().parent / "browser_pages"
PLAYER = Path(__file__).resolve().parent / "browser_player"
LIBRARIES = {  # what the pages load from /lib/: janus.js and adapter.js from Debian's janus-demos
    "janus.js": Path("/usr/share/javascript/janus-gateway/janus.js"),
    "adapter.js": Path("/usr/share/javascript/webrtc-adapter/adapter.js"),
    "hls.js": PLAYER / "node_modules/hls.js/dist/hls.min.js",
}
TYPES = {".html": "text/html", ".js": "text/javascript", ".m3u8": "application/vnd.apple.mpegurl",
         ".ts": "video/mp2t", ".mp4": "video/mp4", ".png": "image/png"}

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-domain-reliability", "--disable-breakpad", "--metrics-recording-only",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--window-size=1280,800",
]
FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,  # a generated picture and a tone instead of devices
    "media.navigator.permission.disabled": True,
    # the fake devices count as capturing: else ICE offers only the default route's address,
    # and a test namespace has no default route (no candidates at all)
    "media.navigator.permission.fake": True, "network.manage-offline-status": False,
    "media.autoplay.default": 0,
    "media.peerconnection.ice.obfuscate_host_addresses": False,  # Janus ignores mDNS candidates
    # no OpenH264 download (offline anyway): Firefox offers what it has built in
    "media.gmp-manager.url": "http://127.0.0.1:9/", "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.enabled": False,
    # no first-run pages, updates, telemetry or other calls home
    "app.update.auto": False, "app.update.enabled": False, "app.normandy.enabled": False,
    "browser.shell.checkDefaultBrowser": False, "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False, "startup.homepage_welcome_url": "about:blank",
    "datareporting.policy.dataSubmissionEnabled": False, "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False, "toolkit.telemetry.unified": False, "toolkit.telemetry.server": "",
    "extensions.update.enabled": False, "extensions.getAddons.cache.enabled": False,
    "browser.safebrowsing.malware.enabled": False, "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False, "browser.search.update": False,
    "network.captive-portal-service.enabled": False, "network.connectivity-service.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/", "browser.region.network.url": "",
    "network.dns.disablePrefetch": True, "network.prefetch-next": False,
}


class PageServer:
    """Serves the test pages, their libraries and a directory of media files on 127.0.0.1, and
    keeps what the pages report (per page, in arrival order) and the PNGs they send."""

    def __init__(self, media_dir: Path, shot_dir: Path) -> None:
        self.media_dir, self.shot_dir = media_dir, shot_dir
        media_dir.mkdir(parents=True, exist_ok=True)
        shot_dir.mkdir(parents=True, exist_ok=True)
        self.reports: list[dict[str, Any]] = []
        self.leaving: set[str] = set()  # pages told to leave their room
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = outer._file(urllib.parse.urlsplit(self.path).path)
                if path is None:
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", TYPES.get(path.suffix, "application/octet-stream"))
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if url.path == "/report":
                    reply = outer._report(json.loads(body))
                elif url.path == "/shot":
                    name = urllib.parse.parse_qs(url.query)["name"][0]
                    (outer.shot_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png").write_bytes(body)
                    reply = {}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="page-server").start()

    def _file(self, path: str) -> Path | None:
        folder, _, name = path.lstrip("/").partition("/")
        if folder == "lib":
            return LIBRARIES.get(name)
        root = {"pages": PAGES, "media": self.media_dir}.get(folder)
        if root is None:
            return None
        found = (root / urllib.parse.unquote(name)).resolve()
        return found if found.is_relative_to(root.resolve()) and found.is_file() else None

    def _report(self, report: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.reports.append(report)
            return {"leave": report.get("page") in self.leaving}

    def url(self, file: str, **query: str | list[str]) -> str:
        """The address of a page of browser_pages/, with its query."""
        return f"{self.base}/pages/{file}?{urllib.parse.urlencode(query, doseq=True)}"

    def of(self, page: str, kind: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """What `page` reported (of `kind`, with the fields in `match`), oldest first."""
        with self._lock:
            return [r for r in self.reports if r.get("page") == page and (kind is None or r.get("kind") == kind)
                    and all(r.get(k) == v for k, v in match.items())]

    def latest(self) -> list[dict[str, Any]]:
        """The newest report of each kind from each page and user, without SDPs (for failures)."""
        with self._lock:
            newest = {(r.get("page"), r.get("kind"), r.get("user"), r.get("name")): r for r in self.reports}
        return [{k: v for k, v in r.items() if k != "sdp"} for r in newest.values()]

    def wait(self, check: Callable[[], Any], timeout: float, what: str, *pages: str) -> Any:
        """`check()`'s first true value; fails early with a page's reported error."""
        deadline = time.monotonic() + timeout
        while True:
            for page in pages:
                errors = self.of(page, "error")
                assert not errors, f"{page}: {errors}"
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the pages' "
                                     f"latest reports: {self.latest()}")
            time.sleep(0.25)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the browser and the processes it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _launched(argv: list[str], home: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    if shutil.which(argv[0]) is None:
        raise AssertionError(f"{argv[0]} is missing: make deps installs it (infra/local/apt-deps.sh)")
    home.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLOUDREC_")}, "HOME": str(home)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            yield proc
        finally:
            _stop(proc)


@contextlib.contextmanager
def chromium(url: str, workdir: Path, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """Headless Chromium on `url` with a new profile in `workdir`, until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [CHROMIUM, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={workdir / 'profile'}", url]
    with _launched(argv, workdir / "home", workdir / "chromium.log") as proc:
        yield proc


@contextlib.contextmanager
def firefox(url: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Headless Firefox ESR on `url` with a new profile (FIREFOX_PREFS) in `workdir`."""
    profile = workdir / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                                             for k, v in FIREFOX_PREFS.items()))
    argv = [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), url]
    with _launched(argv, workdir / "home", workdir / "firefox.log") as proc:
        yield proc


def sdp_video(sdp: str) -> tuple[list[str], bool]:
    """The video codecs of an SDP's first video section and whether it carries simulcast."""
    section = sdp.split("m=video", 1)[1].split("\r\nm=", 1)[0] if "m=video" in sdp else ""
    codecs = re.findall(r"^a=rtpmap:\d+ ([A-Za-z0-9-]+)/", section, re.M)
    return [c for c in codecs if c.lower() not in ("rtx", "red", "ulpfec")], "a=simulcast:" in section
