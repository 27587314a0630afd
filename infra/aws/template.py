"""The AWS side of a deployment, as a template Chalice merges into its own
(`chalice package --merge-template infra/aws/resources.json`).

It adds what the app needs besides its functions: the DynamoDB tables (from
chalicelib.schema, the same definitions the local stack creates), the events FIFO queue and
its dead-letter queue, the internal bucket, the recorder's ECS cluster and Fargate task
definition, the warm workers' fleet and its dispatch queues (infra/aws/fleet.py), a custom
domain mapped at the root (the SDK always posts to `/`), and the layers with the functions'
dependencies (infra/aws/layers.py). It also sets the functions' runtime, points them at those
resources and turns on partial batch responses.

`python infra/aws/template.py` rewrites resources.json; a test checks it is current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib import config, event_log, recording_report
from chalicelib.config import Settings
from chalicelib.output_jobs import MARKER_PREFIX
from chalicelib.schema import (
    EVENTS_MAX_RECEIVES,
    EVENTS_VISIBILITY_S,
    TTL_ATTRIBUTE,
    events_dlq_name,
    tables,
)
from infra.aws import access, fleet, layers, operations

OUT = Path(__file__).with_name("resources.json")
CHALICE_CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"
FUNCTIONS = ("APIHandler", "DeliverCallbacks", "ReapRecorders", "MakeOutputs", "RecorderStopped", "DeliverBackups",
             "SweepOutputs", "DispatchFallback")
API_STAGE = "api"


def stack_named(default: str) -> dict[str, Any]:
    """A resource's name in a deployment: the local name with the stack's in place of `cloudrec`
    (a stack called cloudrec names its resources as the local stack does; two stacks coexist)."""
    return {"Fn::Sub": "${AWS::StackName}" + default.removeprefix("cloudrec")}


def function_timeout(name: str) -> int:
    """A function's timeout as Chalice packages it (`name`: the app's, e.g. dispatch_fallback)."""
    stage = json.loads(CHALICE_CONFIG.read_text())["stages"]["prod"]
    own = stage.get("lambda_functions", {}).get(name, {})
    return int(own.get("lambda_timeout", stage.get("lambda_timeout", 60)))  # 60: Chalice's default


def _queue_arn(name: str) -> dict[str, Any]:
    """A stack's queue by ARN. Chalice names an SQS trigger's queue with the local name (a Sub the
    merge can only rewrite, not replace)."""
    return {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}"
                       + name.removeprefix("cloudrec")}


def _table_resources(s: Settings) -> dict[str, Any]:
    logical = {s.tasks_table: "TasksTable", s.apps_table: "AppsTable", s.limits_table: "LimitsTable",
               s.idempotency_table: "IdempotencyTable"}
    out: dict[str, Any] = {}
    for spec in tables(s):
        props: dict[str, Any] = {**spec, "TableName": stack_named(spec["TableName"])}
        props["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
        props["SSESpecification"] = {"SSEEnabled": True}
        if spec["TableName"] == s.limits_table:
            props["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE["limits"], "Enabled": True}
        if spec["TableName"] == s.tasks_table:  # ended tasks go, and the storage keys with them
            props["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE["tasks"], "Enabled": True}
        if spec["TableName"] == s.idempotency_table:
            props["TimeToLiveSpecification"] = {"AttributeName": TTL_ATTRIBUTE["idempotency"], "Enabled": True}
        out[logical[spec["TableName"]]] = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain",
                                           "UpdateReplacePolicy": "Retain", "Properties": props}
    return out


def _table_arns() -> list[Any]:
    arns: list[Any] = []
    for name in ("TasksTable", "AppsTable", "LimitsTable"):
        arn = {"Fn::GetAtt": [name, "Arn"]}
        arns += [arn, {"Fn::Sub": f"${{{name}.Arn}}/index/*"}]
    return arns


# the recorder image's writable places (recorder_container/Dockerfile sets CLOUDREC_RUN_DIR to "work")
WRITABLE = {"work": "/var/lib/cloudrec", "tmp": "/tmp"}
HEALTH_COMMAND = ["CMD", "python", "-m", "recorder_container.health"]
# The keeper starts as root only to hand the recorder its files and its user: these capabilities
# and no others (the recorder itself, which parses everyone's media, runs as nobody with none).
KEEPER_CAPABILITIES = ("CHOWN", "SETUID", "SETGID", "KILL")
# Docker's default set, less the keeper's (Fargate can drop any capability but add only SYS_PTRACE)
DROPPED_CAPABILITIES = ("AUDIT_WRITE", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD", "NET_BIND_SERVICE", "NET_RAW",
                        "SETFCAP", "SETPCAP", "SYS_CHROOT")


def _recorder(s: Settings) -> dict[str, Any]:
    # long by nature: CloudFormation resources written out as data, one per key
    # what any recorder may do at most; each one gets it only for its own task, through the session
    # policy its keeper assumes this role with (chalicelib/recorder_access.py)
    scoped_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"],
             "Resource": _table_arns()},
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
             "Resource": {"Fn::GetAtt": ["EventsQueue", "Arn"]}},
            {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": {"Fn::GetAtt": ["StorageKeysKey", "Arn"]}},
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"],
             "Resource": [access.INTERNAL_BUCKET_ARN, access.INTERNAL_OBJECTS_ARN]},
        ],
    }
    # the container's own role (the keeper's): read which app a task is for, assume the scoped role
    keeper_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {"Fn::GetAtt": ["TasksTable", "Arn"]}},
            {"Effect": "Allow", "Action": ["sts:AssumeRole"],
             "Resource": {"Fn::GetAtt": ["RecorderScopedRole", "Arn"]}},
        ],
    }
    assume = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
    # a dedicated recorder's keeper, or a warm worker for each recording it hosts (infra/aws/fleet.py)
    assume_scoped = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": [{"Fn::GetAtt": [role, "Arn"]} for role in ("RecorderTaskRole", "WorkerTaskRole")]}}]}
    environment = [
        {"Name": "CLOUDREC_TASKS_TABLE", "Value": {"Ref": "TasksTable"}},
        {"Name": "CLOUDREC_APPS_TABLE", "Value": {"Ref": "AppsTable"}},
        {"Name": "CLOUDREC_LIMITS_TABLE", "Value": {"Ref": "LimitsTable"}},
        {"Name": "CLOUDREC_EVENTS_QUEUE", "Value": {"Fn::GetAtt": ["EventsQueue", "QueueName"]}},
        {"Name": "CLOUDREC_INTERNAL_BUCKET", "Value": access.INTERNAL_BUCKET_NAME},
        {"Name": "CLOUDREC_KMS_KEY_ID", "Value": {"Ref": "StorageKeysAlias"}},
        {"Name": "CLOUDREC_RECORDER_ROLE_ARN", "Value": {"Fn::GetAtt": ["RecorderScopedRole", "Arn"]}},
        {"Name": "AWS_DEFAULT_REGION", "Value": {"Ref": "AWS::Region"}},
    ]
    return {
        "RecorderCluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": stack_named(s.ecs_cluster)}},
        "RecorderLogGroup": {"Type": "AWS::Logs::LogGroup",
                             "Properties": {"LogGroupName": {"Fn::Sub": "/cloudrec/${AWS::StackName}/recorder"},
                                            "RetentionInDays": {"Ref": "LogRetentionDays"}}},
        # roles are named by CloudFormation (the stack's name and a suffix)
        "RecorderTaskRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": assume}},
        # apart from its role: the scoped role's trust names the task role, this policy the scoped role
        "RecorderKeeperPolicy": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": "cloudrec-recorder-keeper", "PolicyDocument": keeper_policy,
            "Roles": [{"Ref": "RecorderTaskRole"}]}},
        "RecorderScopedRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": assume_scoped,
            "Policies": [{"PolicyName": "cloudrec-recorder", "PolicyDocument": scoped_policy}]}},
        "RecorderExecutionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": assume,
            "ManagedPolicyArns": [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"}]}},
        "RecorderTaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "DependsOn": ["RecorderKeeperPolicy"],
                                   "Properties": {
            "Family": stack_named(s.ecs_task_definition),
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": {"Ref": "RecorderCpu"},
            "Memory": {"Ref": "RecorderMemory"},
            "TaskRoleArn": {"Fn::GetAtt": ["RecorderTaskRole", "Arn"]},
            "ExecutionRoleArn": {"Fn::GetAtt": ["RecorderExecutionRole", "Arn"]},
            "Volumes": [{"Name": name} for name in WRITABLE],
            "ContainerDefinitions": [{
                "Name": s.ecs_container,
                "Image": {"Ref": "RecorderImage"},
                "Essential": True,
                "StopTimeout": 60,
                "Environment": environment,
                # the code cannot change; the recorder writes only where the image says (its work
                # dir, CLOUDREC_RUN_DIR) and in /tmp, both on the task's own ephemeral storage
                "ReadonlyRootFilesystem": True,
                "LinuxParameters": {"Capabilities": {"Drop": list(DROPPED_CAPABILITIES)}},
                # the image's HEALTHCHECK (ECS runs only its own): the recorder's control loop turns
                "HealthCheck": {"Command": HEALTH_COMMAND, "Interval": 30, "Timeout": 10, "Retries": 3,
                                "StartPeriod": 60},
                "MountPoints": [{"SourceVolume": name, "ContainerPath": path, "ReadOnly": False}
                                for name, path in WRITABLE.items()],
                "LogConfiguration": {"LogDriver": "awslogs", "Options": {
                    "awslogs-group": {"Ref": "RecorderLogGroup"},
                    "awslogs-region": {"Ref": "AWS::Region"},
                    "awslogs-stream-prefix": "recorder"}},
            }],
        }},
    }


def build(s: Settings) -> dict[str, Any]:
    # long by nature: CloudFormation resources, parameters and outputs written out as data
    resources: dict[str, Any] = {
        **_table_resources(s),
        "EventsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stack_named(events_dlq_name(s)), "FifoQueue": True, "MessageRetentionPeriod": 1209600}},
        # seals the customers' storage keys in the tasks table (chalicelib/sealing.py)
        "StorageKeysKey": {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                           "Properties": {
            "Description": "cloudrec: seals customers' storage keys in the tasks table", "EnableKeyRotation": True,
            "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                "Sid": "TheAccountGrantsThroughIam", "Effect": "Allow", "Action": "kms:*", "Resource": "*",
                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}}]}}},
        # the functions and recorders name the key by this alias (CLOUDREC_KMS_KEY_ID)
        "StorageKeysAlias": {"Type": "AWS::KMS::Alias", "Properties": {
            "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-storage-keys"},
            "TargetKeyId": {"Ref": "StorageKeysKey"}}},
        "OutputsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stack_named(s.outputs_dlq), "MessageRetentionPeriod": 1209600}},
        "EventsQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": stack_named(s.events_queue), "FifoQueue": True, "VisibilityTimeout": EVENTS_VISIBILITY_S,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
                              "maxReceiveCount": EVENTS_MAX_RECEIVES}}},
        "InternalBucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                           "Properties": {
            "BucketName": access.INTERNAL_BUCKET_NAME,
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            # the events and recording reports the console shows (chalicelib/event_log.py,
            # recording_report.py) outlive their tasks a while, not for ever
            "LifecycleConfiguration": {"Rules": [
                {"Id": "ConsoleEvents", "Status": "Enabled", "Prefix": event_log.PREFIX,
                 "ExpirationInDays": event_log.KEEP_DAYS},
                {"Id": "RecordingReports", "Status": "Enabled", "Prefix": recording_report.PREFIX,
                 "ExpirationInDays": event_log.KEEP_DAYS}]}}},
        **_recorder(s),
        **fleet.queues(stack_named(s.dispatch_queue), stack_named(s.fallback_queue),
                       function_timeout("dispatch_fallback")),
        "ApiDomain": {"Type": "AWS::ApiGateway::DomainName", "Properties": {
            "DomainName": {"Ref": "ApiDomainName"},
            "RegionalCertificateArn": {"Ref": "ApiCertificateArn"},
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "SecurityPolicy": "TLS_1_2"}},
        "ApiRootMapping": {"Type": "AWS::ApiGateway::BasePathMapping", "DependsOn": ["RestAPIapiStage"],
                           "Properties": {"DomainName": {"Ref": "ApiDomain"}, "RestApiId": {"Ref": "RestAPI"},
                                          "Stage": API_STAGE}},
    }
    env = {
        "CLOUDREC_LAUNCHER": "ecs",
        "CLOUDREC_TASKS_TABLE": {"Ref": "TasksTable"},
        "CLOUDREC_APPS_TABLE": {"Ref": "AppsTable"},
        "CLOUDREC_LIMITS_TABLE": {"Ref": "LimitsTable"},
        "CLOUDREC_IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
        "CLOUDREC_EVENTS_QUEUE": {"Fn::GetAtt": ["EventsQueue", "QueueName"]},
        "CLOUDREC_OUTPUTS_DLQ": {"Fn::GetAtt": ["OutputsDeadLetterQueue", "QueueName"]},
        "CLOUDREC_DISPATCH_QUEUE": {"Fn::GetAtt": ["DispatchQueue", "QueueName"]},
        "CLOUDREC_FALLBACK_QUEUE": {"Fn::GetAtt": ["DispatchFallbackQueue", "QueueName"]},
        "CLOUDREC_CLAIM_WAIT_S": config.CLOUDREC_CLAIM_WAIT_S.default,
        "CLOUDREC_INTERNAL_BUCKET": access.INTERNAL_BUCKET_NAME,
        "CLOUDREC_VOD_ENDPOINT": {"Ref": "VodEndpoint"},
        "CLOUDREC_ECS_CLUSTER": {"Ref": "RecorderCluster"},
        "CLOUDREC_ECS_TASK_DEFINITION": {"Ref": "RecorderTaskDefinition"},
        "CLOUDREC_ECS_SUBNETS": {"Fn::Join": [",", {"Ref": "RecorderSubnets"}]},
        "CLOUDREC_ECS_SECURITY_GROUPS": {"Fn::Join": [",", {"Ref": "RecorderSecurityGroups"}]},
        "CLOUDREC_ECS_PUBLIC_IP": {"Ref": "RecorderPublicIp"},
        "CLOUDREC_KMS_KEY_ID": {"Ref": "StorageKeysAlias"},
    }
    for name in FUNCTIONS:  # every function on the runtime its layers are built for (infra/aws/layers.py)
        resources[name] = {"Properties": {"Runtime": layers.RUNTIME, "Architectures": [layers.ARCHITECTURE],
                                          "Layers": [{"Ref": "FunctionsLayer"}], "Environment": {"Variables": env}}}
    # the operators' key to the console reaches the API alone (empty: no console)
    resources["APIHandler"]["Properties"]["Environment"] = {"Variables": {
        **env, config.CLOUDREC_CONSOLE_KEY.name: {"Ref": "ConsoleKey"}}}
    for layer, (zip_name, requirements) in layers.LAYERS.items():
        resources[layer] = {"Type": "AWS::Serverless::LayerVersion", "Properties": {
            "Description": f"cloudrec: {requirements} for {layers.RUNTIME}", "ContentUri": f"./{zip_name}",
            "CompatibleRuntimes": [layers.RUNTIME], "CompatibleArchitectures": [layers.ARCHITECTURE],
            "RetentionPolicy": "Delete"}}
    # the queues the functions consume, by the stack's names (the GetAtts in the environment order
    # the queues first)
    resources["DeliverCallbacks"]["Properties"]["Events"] = {
        "DeliverCallbacksSqsEventSource": {"Properties": {"Queue": _queue_arn(s.events_queue),
                                                          "FunctionResponseTypes": ["ReportBatchItemFailures"]}}}
    resources["DispatchFallback"]["Properties"]["Events"] = {
        "DispatchFallbackSqsEventSource": {"Properties": {"Queue": _queue_arn(s.fallback_queue)}}}
    resources.update(fleet.workers(resources["RecorderTaskDefinition"], stack_named("cloudrec-worker")))
    # a recorder's stopped Fargate task (or a worker's, or a worker's child recorder) is replaced at
    # once; only this cluster's tasks concern it
    resources["RecorderStopped"]["Properties"]["Events"] = {"RecorderStoppedEvent": {"Properties": {"Pattern": {
        "detail": {"clusterArn": [{"Fn::GetAtt": ["RecorderCluster", "Arn"]}]}}}}}
    # the output jobs: triggered by their markers in the internal bucket (app.S3_TRIGGERS), PyAV from a
    # layer of its own so the other functions stay small, room for one 2 GB part in /tmp
    resources["MakeOutputs"]["Properties"].update({
        "Layers": [{"Ref": "FunctionsLayer"}, {"Ref": "MediaLayer"}],
        "EphemeralStorage": {"Size": 10240},
        # two retries, then the event to the dead-letter queue (admin failed-outputs); the overdue
        # sweep reports the job as failed meanwhile
        "EventInvokeConfig": {"MaximumRetryAttempts": 2, "DestinationConfig": {"OnFailure": {
            "Type": "SQS", "Destination": {"Fn::GetAtt": ["OutputsDeadLetterQueue", "Arn"]}}}},
        "Events": {"OutputMarker": {"Type": "S3", "Properties": {
            "Bucket": {"Ref": "InternalBucket"}, "Events": "s3:ObjectCreated:*",
            "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": MARKER_PREFIX}]}}}}},
    })
    resources.update(access.roles())
    resources.update(operations.resources(FUNCTIONS, {"EventsDeadLetterQueue": "Events that could not be posted",
                                                      "OutputsDeadLetterQueue": "Output jobs that failed"}))
    # named after the stack (else after the app: two stacks' APIs would look alike)
    resources["RestAPI"] = {"Properties": {"Name": {"Ref": "AWS::StackName"}, **operations.api_throttling()}}
    return {
        "Conditions": operations.conditions(),
        "Parameters": {
            **operations.parameters(),
            "RecorderImage": {"Type": "String",
                              "Description": "The recorder image (recorder_container/Dockerfile) in ECR"},
            "RecorderSubnets": {"Type": "List<AWS::EC2::Subnet::Id>",
                                "Description": "Subnets for recorders; they need a route to the Janus servers"},
            "RecorderSecurityGroups": {"Type": "List<AWS::EC2::SecurityGroup::Id>",
                                       "Description": "Security groups of the recorders (outbound UDP for WebRTC)"},
            "RecorderPublicIp": {"Type": "String", "Default": "ENABLED", "AllowedValues": ["ENABLED", "DISABLED"]},
            "RecorderCpu": {"Type": "String", "Default": "1024"},
            "RecorderMemory": {"Type": "String", "Default": "2048"},
            **fleet.parameters(),
            "ApiDomainName": {"Type": "String", "Description": "e.g. trtc.example.com (the SDK endpoint)"},
            "VodEndpoint": {"Type": "String", "Default": "https://vod.tencentcloudapi.com",
                            "Description": "Tencent VOD API 3.0 endpoint for CloudVod tasks"},
            "ApiCertificateArn": {"Type": "String", "Description": "ACM certificate for ApiDomainName, same region"},
            "ConsoleKey": {"Type": "String", "Default": "", "NoEcho": True,
                           "Description": "The operators' key to the console at https://<ApiDomainName>/console "
                                          "(empty: no console)"},
        },
        "Resources": resources,
        "Outputs": {
            "ApiDomainTarget": {"Description": "Point ApiDomainName (CNAME/alias) here",
                                "Value": {"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]}},
            "RecorderCluster": {"Value": {"Ref": "RecorderCluster"}},
            # what the admin CLI needs to find this stack's resources (python -m infra.aws.deploy env)
            **{_output_name(var): {"Description": var, "Value": value} for var, value in env.items()
               if var != "CLOUDREC_LAUNCHER"},
        },
    }


def _output_name(variable: str) -> str:
    return "".join(word.title() for word in variable.lower().split("_"))


def render() -> str:
    return json.dumps(build(Settings.from_env({})), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
