"""The recorder image carries chalicelib and recorder_container only: neither may need the
Lambda-side web framework or the test tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_recorder_imports_without_chalice_or_moto_or_the_api() -> None:
    code = ("import sys; sys.modules.update(chalice=None, moto=None, pytest=None); "
            "import recorder_container.__main__, recorder_container.shard_recorder; "
            "api = [m for m in ('chalicelib.api', 'chalicelib.wiring', 'chalicelib.recordings') if m in sys.modules]; "
            "assert not api, f'the recorder loads the API side: {api}'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "recorder_container" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            assert (ROOT / line.split()[1]).exists(), line


def test_benches_and_tools_import_as_packages() -> None:
    """bench/ and tools/ import each other and the tests' helpers without path edits (the
    checkout is installed in editable mode by `make deps`)."""
    modules = ["bench.api", "bench.merge", "bench.mix", "bench.many_streams", "bench.remux", "bench.single_stream",
               "tools.merge", "infra.local.stack", "infra.aws.template"]
    subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}"], cwd="/", check=True, timeout=60)
    for path in [*ROOT.glob("bench/*.py"), *ROOT.glob("tools/*.py"), *ROOT.glob("infra/**/*.py")]:
        assert "sys.path" not in path.read_text(), path


def test_recording_and_control_never_load_the_transport() -> None:
    """aiortc and Janus stay behind the Room port: the recorder's control, the recordings and
    the processing run without them (the composition root plugs them in)."""
    code = ("import sys; import recorder_container.recorder, recorder_container.recording, "
            "recorder_container.mixed_recording, recorder_container.hls_writer; "
            "loaded = [m for m in ('aiortc', 'aiohttp', 'recorder_container.janus', 'recorder_container.subscriber') "
            "if m in sys.modules]; "
            "assert not loaded, f'the transport leaks into the recording: {loaded}'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
