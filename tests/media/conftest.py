"""The local stack inside the namespace (Janus offers 10.99.0.1 on v0), with 4-second
segments and a customer bucket in the AWS emulation."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import CALLBACK_KEY, ROOT, LocalStack, StackCallbacks, stack_env, wait_for
from tests.netns import ADDRESS

BUCKET = "customer-bucket"
SEGMENT_S = 4.0
STREAMS_PER_PROCESS = 4  # a task with more streams spreads over worker processes


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert os.environ.get("CLOUDREC_IN_NETNS"), "tests/media run inside a network namespace only"
    run_dir = tmp_path_factory.mktemp("media-stack")
    receiver = StackCallbacks(CALLBACK_KEY)
    env = stack_env(run_dir, receiver.start())
    env.update(CLOUDREC_JANUS_INTERFACE="v0", CLOUDREC_JANUS_IP=ADDRESS, CLOUDREC_SEGMENT_S=str(SEGMENT_S),
               CLOUDREC_STREAMS_PER_PROCESS=str(STREAMS_PER_PROCESS))
    out = open(run_dir / "stack.out", "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "infra/local/stack.py")], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: b"is up" in (run_dir / "stack.out").read_bytes() or proc.poll() is not None, 120,
                 "the local stack")
        assert proc.poll() is None, (run_dir / "stack.out").read_text()
        stack = LocalStack(env, run_dir, proc, receiver)
        stack.boto("s3").create_bucket(Bucket=BUCKET)
        yield stack
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        receiver.server.shutdown()
