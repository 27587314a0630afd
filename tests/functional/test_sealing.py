"""The customer's storage keys are sealed before the task store keeps them: whoever reads the
table (a backup, a recorder of another task, an operator) sees no key — with KMS in AWS (moto's
here), with the stack's own key locally."""

from __future__ import annotations

import base64
import json
import os

import pytest

from chalicelib import aws, wiring
from chalicelib.config import Settings
from chalicelib.sealing import KmsSealer, LocalSealer, Sealer, SealError
from chalicelib.task_store import TaskStore
from chalicelib.tasks import StorageKeys
from tests.support.task_records import task_record

KEYS = StorageKeys("AKIA-CUSTOMER-ACCESS", "customer-secret-key/with+symbols")


def stored_text(settings: Settings, task_id: str) -> str:
    item = aws.client("dynamodb").get_item(TableName=settings.tasks_table, Key={"task_id": {"S": task_id}})["Item"]
    return json.dumps(item)


@pytest.mark.parametrize("kind", ["kms", "local"])
def test_storage_keys_are_sealed_in_the_table_and_read_back(aws_env: Settings, kind: str) -> None:
    sealer: Sealer
    if kind == "kms":
        key_id = aws.client("kms").create_key(Description="cloudrec tasks")["KeyMetadata"]["KeyId"]
        sealer = KmsSealer(aws.client("kms"), key_id)
    else:
        sealer = LocalSealer(os.urandom(32))
    store = TaskStore(aws.client("dynamodb"), aws_env.tasks_table, aws_env.limits_table, sealer=sealer)
    task = task_record(f"seal-{kind}", storage_keys=KEYS)
    store.admit(task, None, None, 10)
    text = stored_text(aws_env, task.task_id)
    assert KEYS.secret_key not in text and KEYS.access_key not in text and "keys_sealed" in text
    read = store.get(task.task_id)
    assert read is not None and read.storage_keys == KEYS and read.params == task.params
    # another key cannot open them
    other = TaskStore(aws.client("dynamodb"), aws_env.tasks_table, aws_env.limits_table,
                      sealer=LocalSealer(os.urandom(32)))
    with pytest.raises(SealError):
        other.get(task.task_id)
    # what Describe and Delete read of it needs no key at all (in AWS: no KMS call per request)
    view = other.get_view(task.task_id)
    assert view is not None and (view.task_id, view.status, view.to_vod) == (task.task_id, task.status, False)


def test_tasks_stored_before_sealing_still_read(aws_env: Settings) -> None:
    plain = wiring.task_store()  # no key configured: kept as they are
    plain.admit(task_record("plain", storage_keys=KEYS), None, None, 10)
    sealed = TaskStore(aws.client("dynamodb"), aws_env.tasks_table, aws_env.limits_table,
                       sealer=LocalSealer(base64.b64decode(base64.b64encode(os.urandom(32)))))
    read = sealed.get("plain")
    assert read is not None and read.storage_keys == KEYS
