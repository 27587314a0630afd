"""The deployment: the merge template is current and, merged into Chalice's own template,
passes cfn-lint; the ECS launcher starts a Fargate task (moto)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from chalicelib import callbacks, recorder_exits
from chalicelib.config import Settings
from chalicelib.errors import ServiceError
from chalicelib.launcher import EcsLauncher
from chalicelib.schema import CALLBACK_FUNCTION_TIMEOUT_S
from infra.aws import layers, template

ROOT = Path(__file__).resolve().parents[2]


def test_merge_template_is_current() -> None:
    assert template.OUT.read_text() == template.render(), "run: python infra/aws/template.py"


def test_chalice_package_with_merge_template_lints_clean(tmp_path: Path) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "chalice"), "package", "--stage", "prod", "--merge-template",
                    "infra/aws/resources.json", str(tmp_path / "out")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    sam = json.loads((tmp_path / "out" / "sam.json").read_text())
    env_vars = sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env_vars["CLOUDREC_LAUNCHER"] == "ecs" and env_vars["CLOUDREC_TASKS_TABLE"] == {"Ref": "TasksTable"}
    events = sam["Resources"]["DeliverCallbacks"]["Properties"]["Events"]
    assert events["DeliverCallbacksSqsEventSource"]["Properties"]["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"]
    # one event per call, and a message in flight stays invisible 6x the function's timeout (AWS's advice)
    assert events["DeliverCallbacksSqsEventSource"]["Properties"]["BatchSize"] == 1
    timeout = sam["Resources"]["DeliverCallbacks"]["Properties"]["Timeout"]
    assert timeout == CALLBACK_FUNCTION_TIMEOUT_S >= 2 * callbacks.DEADLINE_S
    assert sam["Resources"]["EventsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    # the storage keys are sealed with a KMS key of the stack's, which every function knows by its alias
    assert sam["Resources"]["StorageKeysKey"]["Properties"]["EnableKeyRotation"] is True
    assert env_vars["CLOUDREC_KMS_KEY_ID"] == {"Ref": "StorageKeysAlias"}
    stopped = sam["Resources"]["RecorderStopped"]["Properties"]
    pattern = stopped["Events"]["RecorderStoppedEvent"]["Properties"]["Pattern"]
    assert pattern["detail"] == {"lastStatus": ["STOPPED"], "startedBy": ["cloudrec", {"prefix": "ecs-svc/"}],
                                 "clusterArn": [{"Fn::GetAtt": ["RecorderCluster", "Arn"]}]}
    assert stopped["Environment"]["Variables"]["CLOUDREC_TASKS_TABLE"] == {"Ref": "TasksTable"}
    outputs = sam["Resources"]["MakeOutputs"]["Properties"]
    assert outputs["Timeout"] == 900 and outputs["Events"]["OutputMarker"]["Type"] == "S3"
    # one runtime for every function and the layers built for it; PyAV only where it is used
    functions = {name: r["Properties"] for name, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == set(template.FUNCTIONS)
    assert {f["Runtime"] for f in functions.values()} == {layers.RUNTIME}
    assert {name for name, f in functions.items() if {"Ref": "MediaLayer"} in f["Layers"]} == {"MakeOutputs"}
    assert all({"Ref": "FunctionsLayer"} in f["Layers"] for f in functions.values())
    for name, (zip_name, _) in layers.LAYERS.items():
        layer = sam["Resources"][name]["Properties"]
        assert layer["CompatibleRuntimes"] == [layers.RUNTIME] and layer["ContentUri"] == f"./{zip_name}"
    assert "pydantic" not in {p.name.split("-")[0] for p in (tmp_path / "out").glob("*")}  # nothing vendored
    # operations: every log group keeps logs for LogRetentionDays, every function and dead-letter
    # queue has an alarm, the API stage has a throttle
    res = sam["Resources"]
    groups = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert {g["LogGroupName"]["Fn::Sub"] for g in groups if isinstance(g["LogGroupName"], dict)} == {
        f"/aws/lambda/${{{name}}}" for name in functions} | {"/cloudrec/${AWS::StackName}/recorder"}
    # least privilege: each function has its own role and policy; no data action on `*`; RunTask
    # only on the recorder's task definition, PassRole only on the recorder's two roles
    for name, function in functions.items():
        role = res[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert [p["PolicyName"] for p in role["Policies"]] == [f"cloudrec-{name}"]
        for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in targets and all(t != "*" for t in targets), (name, statement)
            if "ecs:RunTask" in statement["Action"]:
                assert targets == [{"Ref": "RecorderTaskDefinition"}] and statement["Action"] == ["ecs:RunTask"]
            if "iam:PassRole" in statement["Action"]:
                assert targets == [{"Fn::GetAtt": ["RecorderTaskRole", "Arn"]},
                                   {"Fn::GetAtt": ["RecorderExecutionRole", "Arn"]}]
    launching = {name for name, f in functions.items() if "ecs:RunTask" in json.dumps(
        res[f["Role"]["Fn::GetAtt"][0]]["Properties"]["Policies"])}
    assert launching == {"APIHandler", "ReapRecorders", "RecorderStopped", "DispatchFallback"}
    assert all(g["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups)
    alarms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)
    watched = {json.dumps(d["Value"]) for a in alarms for d in a["Dimensions"]}
    assert {json.dumps({"Ref": name}) for name in functions} <= watched
    assert {json.dumps({"Fn::GetAtt": [q, "QueueName"]}) for q in ("EventsDeadLetterQueue", "OutputsDeadLetterQueue")
            } <= watched
    code = "".join(p.read_text() for p in (ROOT / "chalicelib").glob("*.py")) + (ROOT / "app.py").read_text()
    for alarm in alarms:  # an alarm on one of the app's own metrics watches a metric the app sends
        if alarm["Namespace"] == "cloudrec":
            assert f'add_metric(name="{alarm["MetricName"]}"' in code, alarm["MetricName"]
    throttle = res["RestAPI"]["Properties"]["MethodSettings"][0]
    assert throttle["ThrottlingRateLimit"] == {"Ref": "ApiRateLimit"} and throttle["HttpMethod"] == "*"
    assert outputs["Events"]["OutputMarker"]["Properties"]["Bucket"] == {"Ref": "InternalBucket"}
    lint = subprocess.run([str(bin_dir / "cfn-lint"), str(tmp_path / "out" / "sam.json")], capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_ecs_launcher_runs_a_fargate_task(aws_env: Settings) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as in a default VPC
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="cloudrec")
    ecs.register_task_definition(family="cloudrec-recorder", requiresCompatibilities=["FARGATE"],
                                 networkMode="awsvpc", cpu="1024", memory="2048",
                                 containerDefinitions=[{"name": "recorder", "image": "recorder:latest", "memory": 2048}])
    settings = Settings.from_env({"CLOUDREC_LAUNCHER": "ecs", "CLOUDREC_ECS_SUBNETS": subnet})
    launcher = EcsLauncher(ecs, settings)
    arn = launcher.launch("T+1.", 2)
    assert arn.startswith("arn:aws:ecs:")
    task = ecs.describe_tasks(cluster="cloudrec", tasks=[arn])["tasks"][0]
    override = task["overrides"]["containerOverrides"][0]
    assert override["name"] == "recorder"
    assert {e["name"]: e["value"] for e in override["environment"]} == {
        "CLOUDREC_TASK_ID": "T+1.", "CLOUDREC_HA_INDEX": "2"}
    launcher.stop(arn)
    # EventBridge's event carries the stopped task as ECS describes it: it names our task and handle
    stopped = {**ecs.describe_tasks(cluster="cloudrec", tasks=[arn])["tasks"][0], "lastStatus": "STOPPED"}
    exit = recorder_exits.parse({"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": stopped})
    assert exit is not None and (exit.task_id, exit.handle) == ("T+1.", arn)
    with pytest.raises(ServiceError):
        EcsLauncher(ecs, Settings.from_env({"CLOUDREC_ECS_CLUSTER": "missing"})).launch("T", 0)


def test_the_recorder_writes_only_where_the_image_says() -> None:
    """Read-only code: the task definition mounts the root file system read-only and gives the
    recorder two places of the task's own storage, its work dir (set by the image) and /tmp."""
    resources = template.build(Settings.from_env({}))["Resources"]
    task = resources["RecorderTaskDefinition"]["Properties"]
    container = task["ContainerDefinitions"][0]
    assert container["ReadonlyRootFilesystem"] is True
    mounts = {m["ContainerPath"]: m["SourceVolume"] for m in container["MountPoints"] if not m["ReadOnly"]}
    assert {v["Name"] for v in task["Volumes"]} == set(mounts.values())
    image_env = dict(re.findall(r"(CLOUDREC_\w+|PYTHON\w+)=(\S+)", (ROOT / "recorder_container/Dockerfile").read_text()))
    assert image_env["CLOUDREC_RUN_DIR"] in mounts and "/tmp" in mounts
    assert image_env["PYTHONDONTWRITEBYTECODE"] == "1"  # nothing written beside the code
    # the work dir is the image's: the task definition does not move it somewhere unwritable
    assert "CLOUDREC_RUN_DIR" not in {e["Name"] for e in container["Environment"]}
    # ECS runs the task definition's health check, the same as the image's HEALTHCHECK
    dockerfile = (ROOT / "recorder_container/Dockerfile").read_text()
    assert json.dumps(container["HealthCheck"]["Command"][1:]) in dockerfile.replace("\\\n", "")
