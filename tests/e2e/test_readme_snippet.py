"""The README's SDK snippet, run as a user would (against the test stack's port)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.stack import ROOT, LocalStack

pytestmark = pytest.mark.e2e


def test_readme_snippet_runs(stack: LocalStack) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Call it with the official SDK", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    snippet = code.group(1)
    assert "127.0.0.1:8000" in snippet and len(snippet.strip().splitlines()) <= 25
    out = subprocess.run([sys.executable, "-c", snippet.replace("127.0.0.1:8000", stack.api_endpoint)],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("Idle")
