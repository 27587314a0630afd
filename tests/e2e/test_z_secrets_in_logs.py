"""After everything above ran on the session's stack: no secret reached any log.

(Runs last: the module name sorts after the other e2e modules.)"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CALLBACK_KEY, SECRET_KEY, USERSIG_KEY, LocalStack
from tests.e2e.test_sdk import ISSUED_USERSIGS, LIMITED_KEY, LIMITED_SIG_KEY, STORAGE_KEYS

pytestmark = pytest.mark.e2e


def test_no_secret_in_any_log(stack: LocalStack) -> None:
    logs = sorted((stack.run_dir / "logs").glob("*.log")) + stack.recorder_logs()
    assert len(logs) >= 4 and any("recorder" in p.name for p in logs)
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "api request" in text and "task ended" in text  # the logs are real and full
    secrets = [*STORAGE_KEYS, SECRET_KEY, USERSIG_KEY, CALLBACK_KEY, LIMITED_KEY, LIMITED_SIG_KEY]
    assert ISSUED_USERSIGS, "the SDK tests ran first and sent UserSigs"
    for secret in secrets + ISSUED_USERSIGS:
        assert secret not in text, f"a secret ({secret[:4]}…) reached the logs"
