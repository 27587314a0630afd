"""Judging requests against IAM policies with an evaluator of AWS's rules
(@cloud-copilot/iam-simulate, installed by `make iam` in tests/support/iam)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

IAM = Path(__file__).resolve().parent / "iam"
ACCOUNT = "123456789012"


def simulate(identity: list[dict[str, Any]], requests: list[tuple[str, str, dict[str, Any]]], principal: str,
             session: dict[str, Any] | None = None, key_policy: dict[str, Any] | None = None) -> list[str]:
    """One decision per (action, resource, context): "Allowed", "ImplicitlyDenied" or
    "ExplicitlyDenied". `key_policy` is the KMS key's own policy, which KMS consults first."""
    sims = [{
        "identityPolicies": [{"name": f"policy{i}", "policy": p} for i, p in enumerate(identity)],
        **({"sessionPolicy": session} if session is not None else {}),
        "serviceControlPolicies": [], "resourceControlPolicies": [],
        **({"resourcePolicy": key_policy} if key_policy is not None and action.startswith("kms:") else {}),
        "request": {"action": action, "principal": principal,
                    "resource": {"resource": resource, "accountId": ACCOUNT}, "contextVariables": context},
    } for action, resource, context in requests]
    out = subprocess.run(["node", str(IAM / "simulate.js")], input=json.dumps(sims), capture_output=True, text=True,
                         timeout=60, check=True)
    results = out.stdout.split()
    assert len(results) == len(requests) and not [r for r in results if r.startswith("error")], out.stdout
    return results
