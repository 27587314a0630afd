"""What each function may do in AWS: the actions its code calls, on this stack's resources only.

Chalice makes one role per function (`<Function>Role`, ApiHandlerRole for the API); the merge
template replaces each role's policies with the ones below. No data action names `*`: tables,
queues, the bucket and the key are named by the stack's own resources; `ecs:RunTask` names the
recorder's task definition and `iam:PassRole` only the recorder's two roles. (The warm workers'
own role is in infra/aws/fleet.py.) The deploy
rehearsal (tests/e2e/test_deploy_rehearsal.py) records every call the functions make
against a deployed stack and judges each one against the role CloudFormation created.
"""

from __future__ import annotations

from typing import Any

from chalicelib.event_log import PREFIX as EVENTS_PREFIX

# the internal bucket by name, not by Ref: the bucket's notification names the output function,
# which (like the recorder's task definition and role) names the bucket: a Ref would be a cycle.
# The stack id's UUID makes the name unique, lowercase and short whatever the stack is called.
_STACK_UUID = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
INTERNAL_BUCKET_NAME = {"Fn::Join": ["-", ["cloudrec", _STACK_UUID]]}
INTERNAL_BUCKET_ARN = {"Fn::Sub": ["arn:${AWS::Partition}:s3:::${Name}", {"Name": INTERNAL_BUCKET_NAME}]}
INTERNAL_OBJECTS_ARN = {"Fn::Sub": ["arn:${AWS::Partition}:s3:::${Name}/*", {"Name": INTERNAL_BUCKET_NAME}]}

_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
_WRITE = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]


def _tables(*names: str) -> list[Any]:
    arns: list[Any] = []
    for name in names:
        arns += [{"Fn::GetAtt": [name, "Arn"]}, {"Fn::Sub": f"${{{name}.Arn}}/index/*"}]
    return arns


def _statement(sid: str, actions: list[str], resources: list[Any] | Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


_GRANTS: dict[str, dict[str, Any]] = {
    # the functions' own logs: their log groups are named after generated function names,
    # `<stack>-<Function>-<suffix>` (a GetAtt on the group would be a cycle through the function)
    "logs": _statement("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::Sub": (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*")}),
    "tasks": _statement("Tasks", _READ + _WRITE, _tables("TasksTable", "LimitsTable")),
    "apps": _statement("Apps", ["dynamodb:GetItem"], _tables("AppsTable")),
    "once": _statement("Once", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                       _tables("IdempotencyTable")),
    "send_events": _statement("SendEvents", ["sqs:SendMessage", "sqs:GetQueueUrl"],
                              {"Fn::GetAtt": ["EventsQueue", "Arn"]}),
    # the event source mapping polls with the function's role; holding a task's later events
    # back is a visibility change
    "consume_events": _statement("ConsumeEvents", ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                                   "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
                                 {"Fn::GetAtt": ["EventsQueue", "Arn"]}),
    # a recording waits for a warm worker (dispatch) and, delayed, for the fallback (chalicelib/dispatch.py)
    "dispatch": _statement("DispatchRecordings", ["sqs:SendMessage", "sqs:GetQueueUrl"], [
        {"Fn::GetAtt": ["DispatchQueue", "Arn"]}, {"Fn::GetAtt": ["DispatchFallbackQueue", "Arn"]}]),
    "consume_fallback": _statement("ConsumeFallback", ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                                       "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
                                   {"Fn::GetAtt": ["DispatchFallbackQueue", "Arn"]}),
    # the on-failure destination of asynchronous invocations is sent with the function's role
    "failed_outputs": _statement("FailedOutputs", ["sqs:SendMessage"],
                                 {"Fn::GetAtt": ["OutputsDeadLetterQueue", "Arn"]}),
    "bucket": _statement("InternalObjects", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                         INTERNAL_OBJECTS_ARN),
    "list_bucket": _statement("InternalBucket", ["s3:ListBucket"], INTERNAL_BUCKET_ARN),
    # the console (chalicelib/console.py): an app's tasks and the apps are scanned; a task's events,
    # report and VOD/backup files are read (and presigned) from the internal bucket
    "console_scan": _statement("ConsoleScan", ["dynamodb:Scan"], [{"Fn::GetAtt": ["TasksTable", "Arn"]},
                                                                  {"Fn::GetAtt": ["AppsTable", "Arn"]}]),
    "read_bucket": _statement("ReadInternalObjects", ["s3:GetObject"], INTERNAL_OBJECTS_ARN),
    # the callback function keeps each event it handles for the console (chalicelib/event_log.py)
    "keep_events": _statement("KeepEvents", ["s3:PutObject"], {"Fn::Sub": [
        f"arn:${{AWS::Partition}}:s3:::${{Name}}/{EVENTS_PREFIX}*", {"Name": INTERNAL_BUCKET_NAME}]}),
    "seal": _statement("SealStorageKeys", ["kms:GenerateDataKey", "kms:Decrypt"],
                       {"Fn::GetAtt": ["StorageKeysKey", "Arn"]}),
    "unseal": _statement("UnsealStorageKeys", ["kms:Decrypt"], {"Fn::GetAtt": ["StorageKeysKey", "Arn"]}),
    "launch": _statement("LaunchRecorders", ["ecs:RunTask"], {"Ref": "RecorderTaskDefinition"}),
    "stop": _statement("StopRecorders", ["ecs:StopTask"], {
        "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${RecorderCluster}/*"}),
    "pass_roles": _statement("PassRecorderRoles", ["iam:PassRole"], [
        {"Fn::GetAtt": ["RecorderTaskRole", "Arn"]}, {"Fn::GetAtt": ["RecorderExecutionRole", "Arn"]}]),
}
_RECORDERS = ("launch", "stop", "pass_roles")
_POST_RECORD = ("tasks", "apps", "send_events", "bucket", "list_bucket", "unseal")

# function -> the grants its code needs (app.py: what each handler builds through chalicelib.wiring)
FUNCTION_GRANTS: dict[str, tuple[str, ...]] = {
    "APIHandler": ("logs", "tasks", "apps", "send_events", "seal", "dispatch", *_RECORDERS, "console_scan",
                   "read_bucket", "list_bucket"),
    "DeliverCallbacks": ("logs", "tasks", "apps", "once", "send_events", "consume_events", "unseal", "keep_events"),
    "ReapRecorders": ("logs", *_POST_RECORD, "dispatch", *_RECORDERS),
    "RecorderStopped": ("logs", *_POST_RECORD, "dispatch", *_RECORDERS),
    "DeliverBackups": ("logs", *_POST_RECORD),
    "SweepOutputs": ("logs", *_POST_RECORD),
    "MakeOutputs": ("logs", *_POST_RECORD, "once", "failed_outputs"),
    # a recording no worker claimed in time: a dedicated recorder for it
    "DispatchFallback": ("logs", "tasks", "consume_fallback", *_RECORDERS),
}


def role_name(function: str) -> str:
    """Chalice's logical name of a function's role."""
    return "ApiHandlerRole" if function == "APIHandler" else f"{function}Role"


def policies(function: str) -> list[dict[str, Any]]:
    statements = [_GRANTS[grant] for grant in FUNCTION_GRANTS[function]]
    return [{"PolicyName": f"cloudrec-{function}", "PolicyDocument": {"Version": "2012-10-17",
                                                                      "Statement": statements}}]


def roles() -> dict[str, Any]:
    """The merge template's part of each function's role: its policies, replacing Chalice's."""
    return {role_name(f): {"Properties": {"Policies": policies(f)}} for f in FUNCTION_GRANTS}
