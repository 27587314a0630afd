"""What running the deployment takes besides the app: log retention on every log group, API
throttling, and alarms (to an SNS topic, mailed where an address is given) on what needs an
operator — dead letters, function errors, recorders replaced over and over, outputs overdue,
files waiting in backup too long, callbacks that keep failing, events a recorder was not
allowed to send, recordings the warm fleet has had no room for.

`resources()` and `parameters()` are merged into the template by infra/aws/template.py.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "cloudrec"  # chalicelib.observability.get_metrics
API_SERVICE = "cloudrec-api"  # the service dimension of app.py's metrics
FIVE_MINUTES = 300


def parameters() -> dict[str, Any]:
    return {
        "LogRetentionDays": {"Type": "Number", "Default": 30, "Description": "Days every log group keeps its logs",
                             "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 731, 1827, 3653]},
        "AlarmEmail": {"Type": "String", "Default": "",
                       "Description": "Where alarms are mailed (confirm the subscription); empty: topic only"},
        "ApiRateLimit": {"Type": "Number", "Default": 500, "MinValue": 1,
                         "Description": "Requests per second the API takes in all, before the apps' own limits"},
        "ApiBurstLimit": {"Type": "Number", "Default": 1000, "MinValue": 1},
        "BackupAgeAlarmSeconds": {"Type": "Number", "Default": 3600, "MinValue": 300,
                                  "Description": "Alarm when an ended task's file has waited this long in backup"},
    }


def _alarm(description: str, metric: dict[str, Any], threshold: float | dict[str, str], periods: int = 1,
           statistic: str = "Sum") -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, **metric, "Statistic": statistic, "Period": FIVE_MINUTES,
        "EvaluationPeriods": periods, "Threshold": threshold, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching", "AlarmActions": [{"Ref": "AlarmTopic"}]}}


def _app_metric(name: str) -> dict[str, Any]:
    return {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": [{"Name": "service", "Value": API_SERVICE}]}


def resources(functions: tuple[str, ...], queues: dict[str, str]) -> dict[str, Any]:
    """`queues`: dead-letter queue resource -> what lands there."""
    out: dict[str, Any] = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "cloudrec alarms"}},
        "AlarmMail": {"Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail", "Properties": {
            "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}},
        "RecordersReplacedAlarm": _alarm(
            "Recorders were replaced 5 times in 15 minutes: recorders keep dying (their logs, ECS's stop reasons)",
            _app_metric("RecordersReplaced"), 5, periods=3),
        "OverdueOutputsAlarm": _alarm("Output jobs went overdue and were reported failed (310 Status 1)",
                                      _app_metric("OverdueOutputs"), 1),
        "CallbacksFailedAlarm": _alarm("Callbacks keep failing: a customer's receiver is down or refuses them",
                                       _app_metric("CallbacksFailed"), 20),
        "BackupAgeAlarm": _alarm(
            "A recording's file has waited in backup for BackupAgeAlarmSeconds: a customer's storage refuses it",
            _app_metric("OldestBackupAge"), {"Ref": "BackupAgeAlarmSeconds"}, statistic="Maximum"),
        "EventsRefusedAlarm": _alarm("An event not signed by its task reached the queue: a recorder misbehaves",
                                     _app_metric("EventsRefused"), 1),
        # a worker with room claims a dispatch within about a second; one a minute old went cold
        "DispatchesUnclaimedAlarm": _alarm(
            "For 15 minutes recordings waited in vain for a warm worker and started on dedicated tasks: the fleet "
            "is at FleetMaxWorkers, or its workers fail (their logs)", {
                "Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DispatchQueue", "QueueName"]}}]},
            60, periods=3, statistic="Maximum"),
    }
    for name in functions:
        out[f"{name}LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{name}}}"}, "RetentionInDays": {"Ref": "LogRetentionDays"}}}
        out[f"{name}ErrorsAlarm"] = _alarm(f"The {name} function failed", {
            "Namespace": "AWS/Lambda", "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": name}}]}, 1)
    for queue, what in queues.items():
        out[f"{queue}Alarm"] = _alarm(f"{what} in {queue}: see the admin CLI", {
            "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]}, 1,
            statistic="Maximum")
    return out


def conditions() -> dict[str, Any]:
    return {"HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}}


def api_throttling() -> dict[str, Any]:
    """The API stage's own throttle (merged into Chalice's RestAPI): a stack-wide ceiling above
    the per-app limits the API itself enforces."""
    return {"MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
                                "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"}}]}
