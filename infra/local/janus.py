"""Janus for the local stack: its configuration (VideoRoom with string_ids, HTTP and
WebSocket transports on 127.0.0.1, nothing else) and how to start it."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalicelib import config

WANTED = {"plugins": {"libjanus_videoroom.so"},
          "transports": {"libjanus_http.so", "libjanus_websockets.so"},
          "events": set(), "loggers": set()}


@dataclass(frozen=True)
class JanusConfig:
    http_port: int = 8088
    ws_port: int = 8188
    rtp_ports: str = "20000-20999"
    interface: str = ""  # network interface ICE may use (e.g. v0 in a test namespace)
    ip: str = ""  # address Janus puts in its SDP
    api_secret: str = ""
    lib_dir: str = ""
    binary: str = "janus"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JanusConfig:
        """The Janus the local stack starts, from CLOUDREC_JANUS_* (chalicelib/config.py)."""
        return cls(
            http_port=config.CLOUDREC_JANUS_HTTP_PORT.get(env),
            ws_port=config.CLOUDREC_JANUS_WS_PORT.get(env),
            rtp_ports=config.CLOUDREC_JANUS_RTP_PORTS.get(env),
            interface=config.CLOUDREC_JANUS_INTERFACE.get(env),
            ip=config.CLOUDREC_JANUS_IP.get(env) or "",
            api_secret=config.CLOUDREC_JANUS_API_SECRET.get(env),
            lib_dir=config.CLOUDREC_JANUS_LIB.get(env),
            binary=config.CLOUDREC_JANUS_BIN.get(env),
        )


def find_lib_dir(configured: str = "") -> Path:
    """Where the Debian package put Janus's modules (/usr/lib/<arch>/janus)."""
    candidates = [configured] if configured else sorted(glob.glob("/usr/lib/*/janus")) + ["/usr/lib/janus"]
    for path in candidates:
        if path and Path(path, "plugins").is_dir():
            return Path(path)
    raise FileNotFoundError("Janus's modules were not found: install Janus (make deps)")


def _disable(folder: Path, kind: str) -> str:
    present = {p.name for p in folder.glob("*.so")} if folder.is_dir() else set()
    return ",".join(sorted(present - WANTED[kind]))


def render(cfg: JanusConfig, conf_dir: Path) -> Path:
    """Write Janus's configuration into `conf_dir`; return the main file."""
    lib = find_lib_dir(cfg.lib_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    general = [
        f'configs_folder = "{conf_dir}"',
        f'plugins_folder = "{lib / "plugins"}"',
        f'transports_folder = "{lib / "transports"}"',
        f'events_folder = "{lib / "events"}"',
        f'loggers_folder = "{lib / "loggers"}"',
        "debug_level = 4",
        "session_timeout = 60",
        'server_name = "cloudrec-local"',
    ]
    if cfg.ip:
        general.append(f'interface = "{cfg.ip}"')
    if cfg.api_secret:
        general.append(f'api_secret = "{cfg.api_secret}"')
    nat = ["nice_debug = false", "ignore_mdns = true"]
    if cfg.interface:
        nat.append(f'ice_enforce_list = "{cfg.interface}"')
    main = "\n".join([
        "general: {", *("\t" + line for line in general), "}",
        "media: {", f'\trtp_port_range = "{cfg.rtp_ports}"', "}",
        "nat: {", *("\t" + line for line in nat), "}",
        "plugins: {", f'\tdisable = "{_disable(lib / "plugins", "plugins")}"', "}",
        "transports: {", f'\tdisable = "{_disable(lib / "transports", "transports")}"', "}",
        "events: {", "\tbroadcast = false", f'\tdisable = "{_disable(lib / "events", "events")}"', "}",
        "loggers: {", f'\tdisable = "{_disable(lib / "loggers", "loggers")}"', "}",
        "",
    ])
    (conf_dir / "janus.jcfg").write_text(main)
    (conf_dir / "janus.plugin.videoroom.jcfg").write_text("general: {\n\tstring_ids = true\n}\n")
    (conf_dir / "janus.transport.http.jcfg").write_text(
        "general: {\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n"
        f"\tport = {cfg.http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n"
        "admin: {\n\tadmin_http = false\n\tadmin_https = false\n}\n"
    )
    (conf_dir / "janus.transport.websockets.jcfg").write_text(
        f"general: {{\n\tjson = \"compact\"\n\tws = true\n\tws_port = {cfg.ws_port}\n\tws_ip = \"127.0.0.1\"\n"
        "\twss = false\n}\nadmin: {\n\tadmin_ws = false\n\tadmin_wss = false\n}\n"
    )
    return conf_dir / "janus.jcfg"


def command(cfg: JanusConfig, conf_dir: Path) -> list[str]:
    # janus reads janus.jcfg from the configs folder
    return [cfg.binary, "-F", str(conf_dir), "-o"]
