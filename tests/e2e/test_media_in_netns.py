"""Runs tests/media (real Janus, aiortc publishers and recorder, media flowing) inside a
network namespace made for it, so no WebRTC media touches this machine's own address.

The media tests run in real time on a 2-core machine; a pause of the machine (another tenant,
the host) can starve one of them for seconds. A test that fails is run once more, alone; it
passes only if it passes then, and a warning names it either way (a flake shows in the
log's warnings summary; a broken test fails twice)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import pytest

from tests.support import netns
from tests.support.stack import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


def _pytest(name: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLOUDREC_IN_NETNS": name}
    return subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-rf", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_media_suite_inside_a_namespace() -> None:
    with netns.namespace(f"cloudrec-m{os.getpid()}") as name:
        run = _pytest(name, ["tests/media"], timeout=1800)
        print(run.stdout[-20000:])
        failed = re.findall(r"^FAILED (tests/media/\S+?\.py::\S+)", run.stdout, re.M)
        assert re.search(r"\b[1-9]\d* passed", run.stdout) and " skipped" not in run.stdout, run.stdout[-8000:]
        if run.returncode != 0:
            assert failed, run.stdout[-8000:] + run.stderr[-4000:]  # an error outside any test: no second try
            # a warning: pytest's summary shows it in the CI log even when the second run passes
            warnings.warn(f"FLAKY? media tests failed once and run again alone: {failed}", stacklevel=1)
            again = _pytest(name, failed, timeout=600)
            print(again.stdout[-20000:])
            assert again.returncode == 0, run.stdout[-6000:] + again.stdout[-6000:] + again.stderr[-2000:]
