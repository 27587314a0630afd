"""Network namespaces for tests that move WebRTC media (DESIGN.md: media never touches
this machine's own address): a namespace with lo and a veth pair, v0 at 10.99.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ADDRESS = "10.99.0.1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def namespace(name: str) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("creating a network namespace needs root and iproute2")
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ip("-n", name, "addr", "add", f"{ADDRESS}/24", "dev", "v0")
        _ip("-n", name, "link", "set", "v0", "up")
        _ip("-n", name, "link", "set", "v1", "up")
        _ip("netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def run_inside(prefix: str, argv: list[str], cwd: Path) -> int:
    """Run a command inside a fresh namespace (with CLOUDREC_IN_NETNS set); its exit code."""
    with namespace(f"{prefix}{os.getpid()}") as name:
        env = {**os.environ, "CLOUDREC_IN_NETNS": name}
        return subprocess.run(["ip", "netns", "exec", name, *argv], env=env, cwd=cwd).returncode
