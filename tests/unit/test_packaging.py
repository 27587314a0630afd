"""The recorder image carries chalicelib and recorder_container only: neither may need the
Lambda-side web framework or the test tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_recorder_imports_without_chalice_or_moto() -> None:
    code = ("import sys; sys.modules.update(chalice=None, moto=None, pytest=None); "
            "import recorder_container.__main__, recorder_container.recorder")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "recorder_container" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            assert (ROOT / line.split()[1]).exists(), line
