"""What a recorder may touch in AWS: its own task, nothing else.

A recorder parses media from anyone in a room, so it never holds the recorder role's full
power (every task, every app, the whole internal bucket). Its keeper
(`recorder_container/keeper.py`) assumes the scoped recorder role for it with the session
policy below, one per launch; AWS grants what both the role and the session policy allow:

- the task item (`task_id` = its TaskId) of the tasks table;
- of its app's item (`app#<SdkAppId>`) in the apps table only how to reach its rooms and tag
  its robots (`apps.RECORDER_VIEW`: no callback key), and its app's concurrency counter
  (`active#<SdkAppId>`) of the limits table — no SecretKey item, no other app;
- `backup/<TaskId>/`, `finished/<TaskId>/` and `reports/<TaskId>/` (its part of the recording
  report) of the internal bucket;
- KMS decryption of values sealed for its task (encryption context `cloudrec-task`);
- sending on the events queue (an event names its task; `chalicelib/events.py`).

The session name carries the TaskId, so CloudTrail says which recording did what.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib import config
from chalicelib.apps import RECORDER_VIEW
from chalicelib.config import Settings
from chalicelib.recording_report import PREFIX as REPORTS
from chalicelib.sealing import CONTEXT_KEY
from chalicelib.storage import BACKUP_PREFIX

ROLE_ENV = config.CLOUDREC_RECORDER_ROLE_ARN.name  # the scoped recorder role the keeper assumes
SESSION_S = 3600  # the longest a chained role session may last; the keeper renews well before
MARKERS = "finished/"  # chalicelib/output_jobs.MARKER_PREFIX (a test keeps them equal)
_TASK_ITEM = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]


@dataclass(frozen=True)
class TaskScope:
    """The one task a recorder works for."""

    task_id: str
    sdkappid: int


def session_name(task_id: str) -> str:
    """An STS role session name for the task (2–64 of [\\w+=,.@-])."""
    return ("rec-" + re.sub(r"[^\w+=,.@-]", "-", task_id))[:64]


def _arn(partition: str, service: str, resource: str) -> str:
    return f"arn:{partition}:{service}:*:*:{resource}"


def _leading_keys(keys: list[str]) -> dict[str, Any]:
    return {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": keys}}


def session_policy(scope: TaskScope, s: Settings, partition: str = "aws") -> dict[str, Any]:
    """The session policy of a recorder of `scope`'s task."""
    task, app = scope.task_id, scope.sdkappid
    bucket = f"arn:{partition}:s3:::{s.internal_bucket}"
    # objects of any bucket, as the tables of any region and account: the role reaches the internal
    # bucket only; naming it three times would not fit STS's 2,048 characters
    objects = f"arn:{partition}:s3:::*/"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": _TASK_ITEM,
         "Resource": _arn(partition, "dynamodb", f"table/{s.tasks_table}"), "Condition": _leading_keys([task])},
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"],
         "Resource": _arn(partition, "dynamodb", f"table/{s.apps_table}"),
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"app#{app}"],
                                                     "dynamodb:Attributes": list(RECORDER_VIEW)},
                       "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"}}},
        {"Effect": "Allow", "Action": ["dynamodb:UpdateItem"],
         "Resource": _arn(partition, "dynamodb", f"table/{s.limits_table}"),
         "Condition": _leading_keys([f"active#{app}"])},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"{objects}{prefix}{task}/*" for prefix in (BACKUP_PREFIX, MARKERS, REPORTS)]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket,
         "Condition": {"StringLike": {"s3:prefix": [f"{BACKUP_PREFIX}{task}/*"]}}},
        {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEquals": {f"kms:EncryptionContext:{CONTEXT_KEY}": task}}},
        {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
         "Resource": _arn(partition, "sqs", s.events_queue)},
    ]}


def assume(sts: Any, role_arn: str, scope: TaskScope, s: Settings) -> dict[str, Any]:
    """Credentials for one recorder of the task: {AccessKeyId, SecretAccessKey, SessionToken,
    Expiration (datetime)}."""
    partition = role_arn.split(":")[1] if role_arn.startswith("arn:") else "aws"
    policy = json.dumps(session_policy(scope, s, partition), separators=(",", ":"))
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name(scope.task_id), Policy=policy,
                          DurationSeconds=SESSION_S)
    creds: dict[str, Any] = out["Credentials"]
    return creds

