"""Media tests and benches: the local stack inside the namespace (Janus offers 10.99.0.1 on
v0), with short segments and a customer bucket in the AWS emulation."""

from __future__ import annotations

from tests.support.netns import ADDRESS

BUCKET = "customer-bucket"
SEGMENT_S = 4.0
STREAMS_PER_PROCESS = 4  # a task with more streams spreads over shard processes


def media_env() -> dict[str, str]:
    """Janus offers the namespace's address on v0; short segments; a small budget of streams per process."""
    return {"CLOUDREC_JANUS_INTERFACE": "v0", "CLOUDREC_JANUS_IP": ADDRESS, "CLOUDREC_SEGMENT_S": str(SEGMENT_S),
            "CLOUDREC_STREAMS_PER_PROCESS": str(STREAMS_PER_PROCESS)}
