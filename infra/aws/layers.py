"""The functions' runtime and the layers that carry their dependencies, built for it.

Chalice would package the dependencies for the Python it runs on, and pick the Lambda runtime
from it (3.11 here: Amazon Linux 2, glibc 2.26, where PyAV 18 has no wheel). So every function
runs on RUNTIME instead, and the dependencies come in two layers built for that runtime's
platform, whatever machine builds them: the functions' own (requirements-functions.txt) and the
output function's media stack (requirements-media.txt, PyAV), each installed from its lock
(requirements-functions.lock, requirements-media.lock: every dependency pinned, with the hashes of
its files, for this runtime; `make lock`).

`python -m infra.aws.layers OUT_DIR` writes OUT_DIR/<layer>.zip for each layer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "python3.12"  # Amazon Linux 2023: glibc 2.34
PYTHON_VERSION = "3.12"
ARCHITECTURE = "x86_64"
GLIBC = (2, 34)
# every wheel platform tag that glibc 2.34 runs, newest first (pip takes only the tags it is given)
PLATFORMS = (*(f"manylinux_2_{minor}_{ARCHITECTURE}" for minor in range(GLIBC[1], 4, -1)),
             f"manylinux2014_{ARCHITECTURE}", f"manylinux2010_{ARCHITECTURE}", f"manylinux1_{ARCHITECTURE}")
# layer resource name -> (zip file name, requirements); the layer installs the requirements' lock
LAYERS = {
    "FunctionsLayer": ("functions-layer.zip", "requirements-functions.txt"),
    "MediaLayer": ("media-layer.zip", "requirements-media.txt"),
}


def pip_for_runtime(*args: str) -> list[str]:
    """A pip command that picks wheels for the Lambda runtime, never the local platform's."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", *platforms,
            "--python-version", PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:", *args]


def lock_of(requirements: str) -> str:
    """The lock of a requirements file: every dependency pinned, with the hashes of its files."""
    return requirements.removesuffix(".txt") + ".lock"


def build(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for zip_name, requirements in LAYERS.values():
        with tempfile.TemporaryDirectory() as work:
            target = Path(work) / "python"  # a layer's python/ is importable on Lambda (as /opt/python)
            subprocess.run(pip_for_runtime("--quiet", "--require-hashes", "--target", str(target),
                                           "-r", str(ROOT / lock_of(requirements))), check=True)
            archive = shutil.make_archive(str(out_dir / zip_name.removesuffix(".zip")), "zip", work, "python")
        built.append(Path(archive))
    return built


if __name__ == "__main__":
    for path in build(Path(sys.argv[1])):
        print(f"wrote {path}")
