"""The Lambda layers resolve for the functions' runtime (PyPI: this test needs the network)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from infra.aws import layers

ROOT = Path(__file__).resolve().parents[2]


def test_layers_resolve_for_the_lambda_runtime(tmp_path: Path) -> None:
    """Every pinned dependency of the functions and of the output function's media layer has a
    wheel for the Lambda runtime's Python and platform (not this machine's)."""
    report = tmp_path / "report.json"
    subprocess.run(layers.pip_for_runtime("--dry-run", "--quiet", "--report", str(report), "--target",
                                          str(tmp_path / "python"), *(a for _, req in layers.LAYERS.values()
                                                                      for a in ("-r", str(ROOT / req)))),
                   check=True, timeout=600, capture_output=True)
    resolved = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i for i in json.loads(report.read_text())["install"]}
    pinned = (ROOT / "requirements-media.txt").read_text().split("av==")[1].split()[0]
    assert resolved["av"]["metadata"]["version"] == pinned
    wheel = resolved["av"]["download_info"]["url"].rsplit("/", 1)[1]  # e.g. cp311-abi3: runs on 3.11 and later
    assert (f"cp{layers.PYTHON_VERSION.replace('.', '')}" in wheel or "-abi3-" in wheel) and wheel.endswith("x86_64.whl")
    for name in ("pydantic-core", "cryptography", "av"):  # the compiled ones
        wheel = resolved[name]["download_info"]["url"].rsplit("/", 1)[1]
        needs = [(int(a), int(b)) for a, b in re.findall(r"manylinux_(\d+)_(\d+)_x86_64", wheel)] or [(2, 17)]
        assert min(needs) <= layers.GLIBC, f"{wheel} needs a newer glibc than Amazon Linux 2023's"
