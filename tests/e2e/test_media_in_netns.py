"""Runs tests/media (real Janus, aiortc publishers and recorder, media flowing) inside a
network namespace made for it, so no WebRTC media touches this machine's own address."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import netns
from tests.support.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


def test_media_suite_inside_a_namespace() -> None:
    with netns.namespace(f"cloudrec-m{os.getpid()}") as name:
        env = {**os.environ, "CLOUDREC_IN_NETNS": name}
        run = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "tests/media",
                              "-p", "no:cacheprovider", "-x"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=900)
    print(run.stdout[-20000:])
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]
    assert re.search(r"\b[1-9]\d* passed", run.stdout) and " skipped" not in run.stdout
