"""A recorder holds credentials for its own task only (chalicelib/recorder_access.py,
recorder_container/keeper.py).

The policies are judged by an IAM evaluator (@cloud-copilot/iam-simulate, tests/support/iam):
what the deployed recorder role allows (infra/aws/template.py) intersected with the session
policy of one task. Every request a recorder makes for its task is allowed; the same requests
for another task, another app or the SecretKey items are denied — and the role alone would
allow them, so it is the session policy that keeps them out."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib import output_jobs, recorder_access
from chalicelib.apps import RECORDER_VIEW, AppRegistry
from chalicelib.config import Settings
from chalicelib.recordings import new_task_id
from chalicelib.sealing import LocalSealer, SealError
from chalicelib.storage import BACKUP_PREFIX
from infra.aws import access, template
from recorder_container.keeper import Keeper
from recorder_container.settings import RecorderSettings
from tests.support import iam_simulate
from tests.support.callback_receiver import CallbackReceiver
from tests.support.moto_app import SDKAPPID

ACCOUNT, REGION = "123456789012", "eu-west-1"
TASK, OTHER_TASK = "k2V0+aGVyZS1pcy1hLXRhc2staWQtb2YtNDQtY2hhcnM.", "b3RoZXItdGFzay1pZC1vZi1mb3J0eS1mb3VyLWNoYXI."
APP, OTHER_APP = 1400000001, 1400000002
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SETTINGS = Settings.from_env({"CLOUDREC_INTERNAL_BUCKET": f"cloudrec-internal-{ACCOUNT}-{REGION}"})


def _arn(name: str) -> str:
    s = SETTINGS
    tables = {"TasksTable": s.tasks_table, "AppsTable": s.apps_table, "LimitsTable": s.limits_table}
    if name in tables:
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{tables[name]}"
    return {"EventsQueue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{s.events_queue}", "StorageKeysKey": KEY_ARN,
            "InternalBucket": f"arn:aws:s3:::{s.internal_bucket}"}[name]


def _resolve(node: Any) -> Any:
    """The template's policy with its references made concrete (what CloudFormation does)."""
    if isinstance(node, list):
        return [_resolve(n) for n in node]
    if isinstance(node, dict):
        if "Fn::GetAtt" in node:
            return _arn(node["Fn::GetAtt"][0])
        if "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            text, names = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
            for name, value in names.items():  # the bucket goes by its name (a Ref would be a cycle)
                assert value == access.INTERNAL_BUCKET_NAME, value
                text = text.replace(f"${{{name}}}", SETTINGS.internal_bucket)
            for name in ("TasksTable", "AppsTable", "LimitsTable", "InternalBucket"):
                text = text.replace(f"${{{name}.Arn}}", _arn(name))
            for name, value in (("Partition", "aws"), ("AccountId", ACCOUNT), ("Region", REGION)):
                text = text.replace(f"${{AWS::{name}}}", value)
            return text
        return {k: _resolve(v) for k, v in node.items()}
    return node


def role_policy() -> dict[str, Any]:
    role = template.build(SETTINGS)["Resources"]["RecorderScopedRole"]
    return dict(_resolve(role["Properties"]["Policies"][0]["PolicyDocument"]))


def key_policy() -> dict[str, Any]:
    """The storage keys' KMS key policy: KMS asks it first (it lets the account's IAM policies decide)."""
    key = template.build(SETTINGS)["Resources"]["StorageKeysKey"]
    return dict(_resolve(key["Properties"]["KeyPolicy"]))


def table(name: str) -> str:
    return _arn(name)


def obj(key: str) -> str:
    return f"{_arn('InternalBucket')}/{key}"


# the app read a recorder makes (apps.AppRegistry.get_room_view)
VIEW = {"dynamodb:Attributes": list(RECORDER_VIEW), "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}
# (action, resource, context): what a recorder of TASK does in AWS
OWN = [
    ("dynamodb:GetItem", table("TasksTable"), {"dynamodb:LeadingKeys": [TASK]}),
    ("dynamodb:UpdateItem", table("TasksTable"), {"dynamodb:LeadingKeys": [TASK]}),
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": [f"app#{APP}"], **VIEW}),
    ("dynamodb:UpdateItem", table("LimitsTable"), {"dynamodb:LeadingKeys": [f"active#{APP}"]}),
    ("s3:PutObject", obj(f"{BACKUP_PREFIX}{TASK}/rec/ha0/a.ts"), {}),
    ("s3:GetObject", obj(f"{BACKUP_PREFIX}{TASK}/rec/ha0/a.ts"), {}),
    ("s3:DeleteObject", obj(f"{BACKUP_PREFIX}{TASK}/rec/ha0/a.ts"), {}),
    ("s3:PutObject", obj(f"{output_jobs.MARKER_PREFIX}{TASK}/stem/part-1.json"), {}),
    ("s3:ListBucket", _arn("InternalBucket"), {"s3:prefix": f"{BACKUP_PREFIX}{TASK}/"}),
    ("kms:Decrypt", KEY_ARN, {"kms:EncryptionContext:cloudrec-task": TASK}),
    ("sqs:SendMessage", _arn("EventsQueue"), {}),
]
# the same kinds of request for what is not its own
FOREIGN = [
    ("dynamodb:GetItem", table("TasksTable"), {"dynamodb:LeadingKeys": [OTHER_TASK]}),
    ("dynamodb:UpdateItem", table("TasksTable"), {"dynamodb:LeadingKeys": [OTHER_TASK]}),
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": [f"app#{OTHER_APP}"], **VIEW}),
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": ["key#AKIDsomeoneselse"], **VIEW}),
    # its own app's callback key, or its whole item (a GetItem without a projection selects all)
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": [f"app#{APP}"],
                                              "dynamodb:Attributes": [*RECORDER_VIEW, "callback_key"],
                                              "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}),
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": [f"app#{APP}"],
                                              "dynamodb:Select": "ALL_ATTRIBUTES"}),
    ("dynamodb:UpdateItem", table("LimitsTable"), {"dynamodb:LeadingKeys": [f"active#{OTHER_APP}"]}),
    ("s3:GetObject", obj(f"{BACKUP_PREFIX}{OTHER_TASK}/rec/ha0/a.ts"), {}),
    ("s3:PutObject", obj(f"{output_jobs.MARKER_PREFIX}{OTHER_TASK}/stem/part-1.json"), {}),
    ("s3:ListBucket", _arn("InternalBucket"), {"s3:prefix": BACKUP_PREFIX}),
    ("s3:ListBucket", _arn("InternalBucket"), {"s3:prefix": f"{BACKUP_PREFIX}{OTHER_TASK}/"}),
    ("kms:Decrypt", KEY_ARN, {"kms:EncryptionContext:cloudrec-task": OTHER_TASK}),
]
# what no recorder does, even for its own task: scan, query the live index, put whole items
NEVER = [
    ("dynamodb:Query", f"{table('TasksTable')}/index/live", {"dynamodb:LeadingKeys": ["1"]}),
    ("dynamodb:PutItem", table("TasksTable"), {"dynamodb:LeadingKeys": [TASK]}),
    ("dynamodb:GetItem", table("AppsTable"), {"dynamodb:LeadingKeys": [f"app#{APP}", f"app#{OTHER_APP}"], **VIEW}),
]


def simulate(requests: list[tuple[str, str, dict[str, Any]]], session: dict[str, Any] | None) -> list[str]:
    return iam_simulate.simulate([role_policy()], requests, f"arn:aws:sts::{ACCOUNT}:assumed-role/recorder/rec-x",
                                 session=session, key_policy=key_policy())


def test_a_recorder_may_do_all_its_task_needs_and_nothing_for_another() -> None:
    session = recorder_access.session_policy(recorder_access.TaskScope(TASK, APP), SETTINGS)
    own = simulate(OWN, session)
    assert own == ["Allowed"] * len(OWN), list(zip(OWN, own, strict=True))
    foreign = simulate(FOREIGN + NEVER, session)
    assert "Allowed" not in foreign, list(zip(FOREIGN + NEVER, foreign, strict=True))
    # the role by itself lets any recorder at every task: the session policy is what keeps them apart
    assert simulate(FOREIGN, None) == ["Allowed"] * len(FOREIGN)


def test_the_session_policy_fits_sts_and_names_the_prefixes_the_code_uses() -> None:
    long_names = Settings.from_env({"CLOUDREC_TASKS_TABLE": "t" * 64, "CLOUDREC_APPS_TABLE": "a" * 64,
                                    "CLOUDREC_LIMITS_TABLE": "l" * 64, "CLOUDREC_INTERNAL_BUCKET": "b" * 63,
                                    "CLOUDREC_EVENTS_QUEUE": "q" * 75 + ".fifo"})
    # the longest names a deployment may give its resources, a TaskId as long as cloudrec makes them
    policy = recorder_access.session_policy(recorder_access.TaskScope(new_task_id(), 2 ** 32 - 1), long_names,
                                            "aws-us-gov")
    assert len(json.dumps(policy, separators=(",", ":"))) <= 2048  # STS refuses longer session policies
    assert recorder_access.MARKERS == output_jobs.MARKER_PREFIX
    assert len(recorder_access.session_name("+" * 300)) <= 64


def test_the_keeper_gives_the_recorder_only_its_own_credentials_and_key(aws_env: Settings, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    stack_key = os.urandom(32)
    monkeypatch.setenv("CLOUDREC_SEAL_KEY", base64.b64encode(stack_key).decode())
    monkeypatch.setenv(recorder_access.ROLE_ENV, f"arn:aws:iam::{ACCOUNT}:role/cloudrec-recorder-scoped")
    settings = RecorderSettings.from_env({**os.environ, "CLOUDREC_TASK_ID": TASK})
    keeper = Keeper(settings, APP, tmp_path)
    keeper.renew()
    env = keeper.recorder_environment(dict(os.environ))

    # no way to the launch's own credentials: no keys, no role, no profile, no metadata service
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", recorder_access.ROLE_ENV} & env.keys()
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    # what the recorder's SDK resolves in that environment: the task's assumed-role session
    resolved = subprocess.run([sys.executable, "-c", "import boto3, json; c = boto3.Session().get_credentials(); "
                               "print(json.dumps([c.method, c.access_key, bool(c.token)]))"],
                              env=env, capture_output=True, text=True, timeout=60, check=True)
    written = json.loads(keeper.credentials.read_text())
    assert json.loads(resolved.stdout) == ["custom-process", written["AccessKeyId"], True]
    assert written["AccessKeyId"] != os.environ["AWS_ACCESS_KEY_ID"]
    assert keeper.due_in() > 60  # renewed long before it runs out

    # the stack's sealing key stays with the keeper: the recorder's opens its own task's values only
    stack = LocalSealer(stack_key)
    assert base64.b64decode(env["CLOUDREC_SEAL_KEY"]) != stack_key
    mine = LocalSealer(base64.b64decode(env["CLOUDREC_SEAL_KEY"]), env["CLOUDREC_SEAL_KEY_TASK"])
    assert mine.open(stack.seal("customer keys", TASK), TASK) == "customer keys"
    with pytest.raises(SealError):
        mine.open(stack.seal("someone else's keys", OTHER_TASK), OTHER_TASK)
    with pytest.raises(SealError):  # nor by claiming it is its own
        mine.open(stack.seal("someone else's keys", OTHER_TASK), TASK)



def test_a_recorder_reads_of_its_app_only_how_to_reach_its_rooms(registry: AppRegistry,
                                                                 receiver: CallbackReceiver) -> None:
    full = registry.get_app(SDKAPPID)
    view = registry.get_room_view(SDKAPPID)
    assert full is not None and view is not None and full.callback_key  # the app has a callback key
    assert (view.usersig_key, view.room) == (full.usersig_key, full.room)
    assert view.callback_key == "" and view.callback_url == "" and view.secret_ids == ()
    assert registry.get_room_view(SDKAPPID + 1) is None
