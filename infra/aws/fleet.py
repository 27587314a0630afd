"""The warm recorder fleet in a deployment: the dispatch queues, the workers' ECS service and
its scaling (merged into the template by infra/aws/template.py).

The API puts each new recording on the dispatch queue; a worker with free capacity claims it
and runs its recorder as a child (recorder_container/worker.py). A second, delayed message on
the fallback queue reaches the DispatchFallback function, which starts a dedicated recorder
when no worker claimed the task by then (chalicelib/dispatch.py). Workers run the recorder's
image with the recorder's hardening, hold a role of their own that may claim dispatches and
assume the scoped recorder role (as a keeper does, for one task at a time), and publish
CapacityInUse in their logs (embedded metric format); the service scales to keep it near
FleetTargetPercent. A worker protects itself from scale-in while it hosts recordings.
"""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.recorder_exits import WORKER_SOURCE
from chalicelib.schema import DISPATCH_QUEUE_ATTRIBUTES
from infra.aws import operations

WORKER_COMMAND = ["python", "-m", "recorder_container.worker"]
WORKER_HEALTH_COMMAND = ["CMD", *WORKER_COMMAND, "health"]
WORKER_CONTAINER = "worker"
WORKER_SERVICE = "cloudrec-worker"  # the service dimension of the workers' metrics
CAPACITY_METRIC = "CapacityInUse"
WORKER_STOP_TIMEOUT_S = 120  # ECS's longest: a worker hands its recordings on when told to stop
FALLBACK_VISIBILITY_FACTOR = 6  # AWS's advice for a queue a function consumes: 6x its timeout
# Application Auto Scaling acts on ECS services with this service-linked role (made by AWS on first use)
_SCALING_ROLE = ("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                 "ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")


def scaling_metric(fleet: Any) -> dict[str, Any]:
    """The metric the fleet scales on: its workers' average CapacityInUse, as each logs it
    (recorder_container/worker.py: the service and fleet dimensions)."""
    return {"Namespace": operations.NAMESPACE, "MetricName": CAPACITY_METRIC,
            "Dimensions": [{"Name": "service", "Value": WORKER_SERVICE}, {"Name": "fleet", "Value": fleet}],
            "Statistic": "Average", "Unit": "Percent"}


def parameters() -> dict[str, Any]:
    return {
        "FleetMinWorkers": {"Type": "Number", "Default": 1, "MinValue": 1,
                            "Description": "Warm workers that always run (the fleet scales from here)"},
        "FleetMaxWorkers": {"Type": "Number", "Default": 10, "MinValue": 1,
                            "Description": "The most warm workers the fleet scales to"},
        "FleetTargetPercent": {"Type": "Number", "Default": 70, "MinValue": 1, "MaxValue": 100,
                               "Description": "Capacity in use the fleet scales to keep; the rest is headroom"},
        "WorkerCpu": {"Type": "String", "Default": "2048"},
        "WorkerMemory": {"Type": "String", "Default": "4096"},
    }


def queues(dispatch_name: Any, fallback_name: Any, fallback_timeout_s: int) -> dict[str, Any]:
    """The dispatch queue workers poll, and the fallback queue DispatchFallback consumes
    (`fallback_timeout_s`: that function's timeout)."""
    return {
        # as the local stack makes it: a dispatch nobody claimed in five minutes is stale
        "DispatchQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": dispatch_name, **{k: int(v) for k, v in DISPATCH_QUEUE_ATTRIBUTES.items()}}},
        "DispatchFallbackQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": fallback_name, "VisibilityTimeout": FALLBACK_VISIBILITY_FACTOR * fallback_timeout_s}},
    }


def _worker_policy() -> dict[str, Any]:
    task_arns = {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${RecorderCluster}/*"}
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ClaimDispatches", "Effect": "Allow",
         "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"],
         "Resource": {"Fn::GetAtt": ["DispatchQueue", "Arn"]}},
        # claim a task (a conditional update of its launch handle), read it as a keeper does
        {"Sid": "ClaimTasks", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
         "Resource": {"Fn::GetAtt": ["TasksTable", "Arn"]}},
        # each child recorder gets the scoped role for its own task only, as a keeper's does
        {"Sid": "RecordForOneTask", "Effect": "Allow", "Action": ["sts:AssumeRole"],
         "Resource": {"Fn::GetAtt": ["RecorderScopedRole", "Arn"]}},
        # a child's exit, told as ECS tells of a dedicated recorder's (the RecorderStopped rule)
        {"Sid": "ReportRecorderExits", "Effect": "Allow", "Action": ["events:PutEvents"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
         # each entry's source (a key of many values): only the workers' own, never aws.ecs's
         "Condition": {"ForAllValues:StringEquals": {"events:source": [WORKER_SOURCE]},
                       "Null": {"events:source": "false"}}},
        # no scale-in while it hosts recordings
        {"Sid": "ProtectWhileRecording", "Effect": "Allow",
         "Action": ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"], "Resource": task_arns},
    ]}


def _worker_task_definition(recorder: dict[str, Any], family: Any, dispatch_queue: Any) -> dict[str, Any]:
    """The recorder's task definition (image, read-only root, capabilities, volumes, logs) as a worker's."""
    out = copy.deepcopy(recorder)
    out["DependsOn"] = ["WorkerPolicy"]
    props = out["Properties"]
    props.update({"Family": family, "Cpu": {"Ref": "WorkerCpu"}, "Memory": {"Ref": "WorkerMemory"},
                  "TaskRoleArn": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}})
    [container] = props["ContainerDefinitions"]
    container.update({
        "Name": WORKER_CONTAINER, "Command": WORKER_COMMAND, "StopTimeout": WORKER_STOP_TIMEOUT_S,
        "Environment": [*container["Environment"], {"Name": "CLOUDREC_DISPATCH_QUEUE", "Value": dispatch_queue},
                        {"Name": "CLOUDREC_LAUNCHER", "Value": "ecs"},
                        {"Name": "CLOUDREC_FLEET", "Value": {"Ref": "AWS::StackName"}}],
        "HealthCheck": {**container["HealthCheck"], "Command": WORKER_HEALTH_COMMAND}})
    container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] = "worker"
    return out


def workers(recorder: dict[str, Any], family: Any) -> dict[str, Any]:
    """The workers: their role, task definition (from the recorder's), service and scaling."""
    assume = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
    dispatch_queue = {"Fn::GetAtt": ["DispatchQueue", "QueueName"]}
    return {
        "WorkerTaskRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": assume}},
        # apart from its role: the scoped role's trust names the worker's role, this policy the scoped role
        "WorkerPolicy": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": "cloudrec-worker", "PolicyDocument": _worker_policy(),
            "Roles": [{"Ref": "WorkerTaskRole"}]}},
        "WorkerTaskDefinition": _worker_task_definition(recorder, family, dispatch_queue),
        "WorkerService": {"Type": "AWS::ECS::Service", "Properties": {
            "Cluster": {"Ref": "RecorderCluster"},
            "TaskDefinition": {"Ref": "WorkerTaskDefinition"},
            "LaunchType": "FARGATE",
            "DesiredCount": {"Ref": "FleetMinWorkers"},
            "NetworkConfiguration": {"AwsvpcConfiguration": {
                "Subnets": {"Ref": "RecorderSubnets"}, "SecurityGroups": {"Ref": "RecorderSecurityGroups"},
                "AssignPublicIp": {"Ref": "RecorderPublicIp"}}},
            # a new worker starts before an old one is told to stop (and to hand its recordings on);
            # workers that never get healthy roll the deployment back instead of holding the stack for hours
            "DeploymentConfiguration": {"MinimumHealthyPercent": 100, "MaximumPercent": 200,
                                        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}}},
        "WorkerScalableTarget": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": {"Fn::Sub": "service/${RecorderCluster}/${WorkerService.Name}"},
            "MinCapacity": {"Ref": "FleetMinWorkers"}, "MaxCapacity": {"Ref": "FleetMaxWorkers"},
            "RoleARN": {"Fn::Sub": _SCALING_ROLE}}},
        "WorkerScalingPolicy": {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
            "PolicyName": {"Fn::Sub": "${AWS::StackName}-worker-capacity"},
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": {"Ref": "WorkerScalableTarget"},
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": {"Ref": "FleetTargetPercent"},
                "ScaleInCooldown": 300, "ScaleOutCooldown": 30,
                "CustomizedMetricSpecification": scaling_metric({"Ref": "AWS::StackName"})}}},
    }
