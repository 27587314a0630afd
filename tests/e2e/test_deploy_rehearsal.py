"""The deploy rehearsal: `make package`'s output, deployed by infra/aws/deploy.py into the AWS
emulation's CloudFormation (moto server) as two stacks side by side, then used.

The API runs with the environment CloudFormation gave the deployed API function, and takes a
Create, Describe and Delete from the official SDK (the recording waits for a warm worker, then
goes to the fallback function, which starts a dedicated recorder); the other functions run as
Lambda runs them (their deployed handler and environment) on the events they exist for. Each
function calls
AWS with its own access key, the emulation records every request, and each call is judged
against the policy CloudFormation attached to that function's role by an IAM evaluator
(@cloud-copilot/iam-simulate); so is what a warm worker does, against the workers' role. What
the emulation cannot create is named (tests/support/rehearsal.py) and covered by cfn-lint with
AWS's serverless rules.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.events.models import EventPattern
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.trtc.v20190722 import models, trtc_client

from chalicelib import dispatch, recorder_exits
from infra.aws import deploy, fleet, template
from infra.local.pump import sqs_record
from recorder_container.worker import METRICS_SERVICE
from tests.support import iam_simulate, rehearsal
from tests.support.callback_receiver import CallbackReceiver
from tests.support.sdk import create_params
from tests.support.stack import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP_SOURCE = (ROOT / "app.py").read_text()
REGION, ACCOUNT = "us-east-1", "123456789012"
STACKS = ("cloudrec", "cloudrec-staging")
SDKAPPID, SECRET_ID, SECRET_KEY, USERSIG_KEY, CALLBACK_KEY = 1400000001, "AKIDREHEARSAL", "rehearsal-key", "sig", "cb"
# What the emulation cannot create (tests/support/rehearsal.py): types moto has no model for
# (it skips them), and the API's gateway side, which moto cannot deploy from an OpenAPI body
NOT_EMULATED = {
    "AWS::ApplicationAutoScaling::ScalableTarget": "moto has no Application Auto Scaling in CloudFormation",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "likewise (the workers' target tracking on CapacityInUse)",
    "AWS::CloudWatch::Alarm": "moto has no CloudWatch alarms in CloudFormation",
    "AWS::Lambda::EventInvokeConfig": "nor Lambda's on-failure destinations",
    "AWS::SNS::Subscription": "nor SNS subscriptions",
}
# what one stack is made of, by type, among what the emulation creates
MADE = {"AWS::Lambda::Function": len(template.FUNCTIONS), "AWS::Lambda::EventSourceMapping": 2,
        "AWS::SQS::Queue": 5, "AWS::DynamoDB::Table": 4, "AWS::ECS::Cluster": 1, "AWS::ECS::TaskDefinition": 2,
        "AWS::ECS::Service": 1, "AWS::IAM::Role": len(template.FUNCTIONS) + 4, "AWS::IAM::Policy": 2,
        "AWS::Events::Rule": 4, "AWS::Logs::LogGroup": len(template.FUNCTIONS) + 1}
# cfn-lint's serverless rules (cfn-lint-serverless) that the template does not follow, and why
ACCEPTED_RULES = {
    "WS1000": "X-Ray tracing is the operator's choice (it costs per trace); Powertools logs and metrics are on",
    "WS2002": "likewise for the API stage",
    "ES2000": "API Gateway access logs need an account-wide CloudWatch role; the API function logs each request",
    "ES4000": "scheduled functions (reaper, backups, sweep) run again within minutes; a DLQ would fill with ticks; "
              "RecorderStopped's work is redone by the reaper when its lease runs out",
    "ES1007": "the same functions: async only through their schedule/ECS rule",
    "ES1001": "an SQS event source cannot have an on-failure destination: EventsQueue's redrive policy is it; "
              "a fallback that keeps failing is the reaper's when the task's launch grace runs out",
    "ES6000": "two of the queues it names are dead-letter queues themselves; a dispatch (or fallback) message "
              "nobody took is stale within minutes, its task the reaper's when the launch grace runs out",
    "ES7000": "the alarm mail subscription: an alarm stays in CloudWatch when a mail is lost",
}


class Emulation:
    """moto's server (the local stack's AWS emulation) recording every request it serves."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = tmp / "requests.jsonl"
        env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(self.recording)}
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.local.aws_emulation", "-H", "127.0.0.1", "-p",
                                      str(self.port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=(tmp / "emulation.log").open("wb"))
        wait_for(lambda: self._up(), 30, "the AWS emulation")

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/moto-api/", timeout=1).ok
        except requests.ConnectionError:
            return False

    def session(self, key: str = "admin") -> boto3.session.Session:
        return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key="x", region_name=REGION)

    def client(self, service: str, key: str = "admin") -> Any:
        return self.session(key).client(service, endpoint_url=self.url)

    def record(self, on: bool) -> None:
        requests.post(f"{self.url}/moto-api/recorder/{'start' if on else 'stop'}-recording", timeout=5)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def emulation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulation]:
    emu = Emulation(tmp_path_factory.mktemp("emulation"))
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make package` makes (Chalice's template merged with ours, the zip, the layers)."""
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "chalice"), "package", "--stage", "prod", "--merge-template",
                    "infra/aws/resources.json", str(out)], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=600)
    subprocess.run([sys.executable, "-m", "infra.aws.layers", str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def stacks(emulation: Emulation, package: Path) -> dict[str, Any]:
    """Both stacks deployed from the package: name -> (status, what was left out)."""
    ec2 = emulation.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="recorders", Description="WebRTC out", VpcId=vpc)["GroupId"]
    s3, cfn = emulation.client("s3"), emulation.client("cloudformation")
    bucket = deploy.artifacts_bucket(s3, emulation.client("sts"), REGION)
    translated = deploy.translate(deploy.upload(s3, package, bucket), REGION)
    rehearsed, left_out = rehearsal.rehearsable(translated)
    params = {"RecorderImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cloudrec-recorder:1",
              "RecorderSubnets": subnet, "RecorderSecurityGroups": group, "ApiDomainName": "trtc.example.com",
              "ApiCertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/rehearsal"}
    out = {name: deploy.deploy(cfn, s3, bucket, rehearsed, name, params, timeout_s=120) for name in STACKS}
    for name in STACKS:
        assert rehearsal.restore_key_policies(rehearsed, _resources(emulation, name), emulation.client("kms"),
                                              ACCOUNT) == 1
    return {"status": out, "left_out": left_out, "translated": translated, "package": package}


def _resources(emulation: Emulation, stack: str) -> dict[str, dict[str, Any]]:
    summaries = emulation.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
    # moto also lists one entry with no id, type or name (an artefact of its listing)
    return {r["LogicalResourceId"]: r for r in summaries if r["LogicalResourceId"]}


def _function(emulation: Emulation, stack: str, logical: str) -> dict[str, Any]:
    name = _resources(emulation, stack)[logical]["PhysicalResourceId"]
    return dict(emulation.client("lambda").get_function_configuration(FunctionName=name))


def test_two_stacks_of_the_template_deploy_side_by_side(emulation: Emulation, stacks: dict[str, Any]) -> None:
    assert stacks["status"] == dict.fromkeys(STACKS, "CREATE_COMPLETE")
    assert stacks["left_out"]["not emulated"] == sorted(NOT_EMULATED)
    assert {r["Type"] for r in stacks["translated"]["Resources"].values()
            if r["Type"].startswith("AWS::ApiGateway")} == rehearsal.GATEWAY_TYPES
    first, second = (_resources(emulation, name) for name in STACKS)
    made = {name for name, r in stacks["translated"]["Resources"].items()
            if name not in stacks["left_out"]["gateway"] and r["Type"] not in NOT_EMULATED}
    assert set(first) == set(second) == made - {"AlarmMail"}, made ^ set(first)  # no AlarmEmail given
    assert {r["ResourceStatus"] for r in [*first.values(), *second.values()]} == {"CREATE_COMPLETE"}
    counts = Counter(r["ResourceType"] for r in first.values())
    assert {kind: counts[kind] for kind in MADE} == MADE
    # nothing of one stack is the other's: every named resource is the stack's own
    created = {r["LogicalResourceId"] for r in first.values()  # (moto gives layers no physical id)
               if r["ResourceType"] not in ("AWS::Lambda::Permission", "AWS::Lambda::LayerVersion")}
    for logical in created:
        assert first[logical]["PhysicalResourceId"] != second[logical]["PhysicalResourceId"], logical


@pytest.mark.parametrize("stack", STACKS)
def test_every_function_names_resources_that_exist(emulation: Emulation, stacks: dict[str, Any], stack: str) -> None:
    for logical in template.FUNCTIONS:
        config = _function(emulation, stack, logical)
        env = config["Environment"]["Variables"]
        assert config["Runtime"] == "python3.12"
        module, handler = config["Handler"].split(".")
        assert module == "app" and re.search(rf"^(def {handler}\(|{handler} = )", APP_SOURCE, re.M), config["Handler"]
        for var in ("CLOUDREC_TASKS_TABLE", "CLOUDREC_APPS_TABLE", "CLOUDREC_LIMITS_TABLE",
                    "CLOUDREC_IDEMPOTENCY_TABLE"):
            assert emulation.client("dynamodb").describe_table(TableName=env[var])["Table"]["TableStatus"] == "ACTIVE"
        for var in ("CLOUDREC_EVENTS_QUEUE", "CLOUDREC_OUTPUTS_DLQ", "CLOUDREC_DISPATCH_QUEUE",
                    "CLOUDREC_FALLBACK_QUEUE"):
            assert env[var].startswith(f"{stack}-"), var
            emulation.client("sqs").get_queue_url(QueueName=env[var])
        emulation.client("s3").head_bucket(Bucket=env["CLOUDREC_INTERNAL_BUCKET"])
        assert emulation.client("kms").describe_key(KeyId=env["CLOUDREC_KMS_KEY_ID"])["KeyMetadata"]["Enabled"]
        ecs = emulation.client("ecs")
        assert ecs.describe_clusters(clusters=[env["CLOUDREC_ECS_CLUSTER"]])["clusters"][0]["status"] == "ACTIVE"
        definition = ecs.describe_task_definition(taskDefinition=env["CLOUDREC_ECS_TASK_DEFINITION"])
        container = definition["taskDefinition"]["containerDefinitions"][0]
        recorder_env = {e["name"]: e["value"] for e in container["environment"]}
        for var in ("CLOUDREC_TASKS_TABLE", "CLOUDREC_EVENTS_QUEUE", "CLOUDREC_INTERNAL_BUCKET", "CLOUDREC_KMS_KEY_ID"):
            assert recorder_env[var] == env[var], var  # the recorder and the functions share the stack's resources
        assert recorder_env["CLOUDREC_RECORDER_ROLE_ARN"].startswith(f"arn:aws:iam::{ACCOUNT}:role/{stack}-")


@pytest.mark.parametrize("stack", STACKS)
def test_the_warm_workers_run_as_a_service_of_the_recorder_image(emulation: Emulation, stacks: dict[str, Any],
                                                                 stack: str) -> None:
    """A worker is the recorder's container (image, environment, read-only code, capabilities)
    running the worker's command on the stack's dispatch queue, in an ECS service of the
    recorders' cluster; its role may assume the scoped recorder role; RecorderStopped hears of
    the workers and of their recorders in this cluster only."""
    resources = _resources(emulation, stack)
    env = _function(emulation, stack, "APIHandler")["Environment"]["Variables"]
    ecs, sqs, iam = emulation.client("ecs"), emulation.client("sqs"), emulation.client("iam")
    recorder_definition, worker_definition = (
        ecs.describe_task_definition(taskDefinition=resources[name]["PhysicalResourceId"])["taskDefinition"]
        for name in ("RecorderTaskDefinition", "WorkerTaskDefinition"))
    recorder, worker = recorder_definition["containerDefinitions"][0], worker_definition["containerDefinitions"][0]
    recorder_env, worker_env = ({e["name"]: e["value"] for e in c["environment"]} for c in (recorder, worker))
    assert worker_env == {**recorder_env, "CLOUDREC_DISPATCH_QUEUE": env["CLOUDREC_DISPATCH_QUEUE"],
                          "CLOUDREC_LAUNCHER": "ecs", "CLOUDREC_FLEET": stack}  # its metrics: this stack's
    assert worker["command"] == fleet.WORKER_COMMAND and worker["healthCheck"]["command"] == fleet.WORKER_HEALTH_COMMAND
    for same in ("image", "readonlyRootFilesystem", "linuxParameters", "mountPoints"):
        assert worker[same] == recorder[same], same
    assert worker["stopTimeout"] == 120 and worker["logConfiguration"]["options"]["awslogs-stream-prefix"] == "worker"
    # the fleet scales on what its workers publish (tests/unit/test_worker_capacity.py: the EMF line)
    assert fleet.WORKER_SERVICE == METRICS_SERVICE
    [service] = ecs.describe_services(cluster=env["CLOUDREC_ECS_CLUSTER"],
                                      services=[resources["WorkerService"]["PhysicalResourceId"]])["services"]
    assert service["taskDefinition"] == worker_definition["taskDefinitionArn"] and service["desiredCount"] == 1

    def attributes(queue: str) -> dict[str, str]:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])

    dispatched = attributes(env["CLOUDREC_DISPATCH_QUEUE"])
    assert (dispatched["MessageRetentionPeriod"], dispatched["VisibilityTimeout"]) == ("300", "30")
    fallback_timeout = _function(emulation, stack, "DispatchFallback")["Timeout"]
    assert int(attributes(env["CLOUDREC_FALLBACK_QUEUE"])["VisibilityTimeout"]) >= 6 * fallback_timeout
    # the scoped role trusts a recorder's keeper and a worker, and no one else
    roles = {name: iam.get_role(RoleName=resources[name]["PhysicalResourceId"])["Role"]
             for name in ("RecorderTaskRole", "WorkerTaskRole", "RecorderScopedRole")}
    [trust] = roles["RecorderScopedRole"]["AssumeRolePolicyDocument"]["Statement"]
    assert sorted(trust["Principal"]["AWS"]) == sorted([roles["RecorderTaskRole"]["Arn"], roles["WorkerTaskRole"]["Arn"]])
    assert worker_env["CLOUDREC_RECORDER_ROLE_ARN"] == roles["RecorderScopedRole"]["Arn"]
    # RecorderStopped's rule, matched as EventBridge does (moto's matcher): a dedicated recorder,
    # a worker (a service's task), a worker's recorder; not another stack's cluster
    [rule] = [r for name, r in resources.items() if name.startswith("RecorderStopped")
              and r["ResourceType"] == "AWS::Events::Rule"]
    pattern = _document(emulation.client("events").describe_rule(Name=rule["PhysicalResourceId"])["EventPattern"])
    cluster = ecs.describe_clusters(clusters=[env["CLOUDREC_ECS_CLUSTER"]])["clusters"][0]["clusterArn"]
    other = cluster.replace(f"cluster/{stack}", "cluster/another")

    def heard(source: str, started_by: str, cluster_arn: str) -> bool:
        event = _eventbridge(source, "ECS Task State Change", {
            "lastStatus": "STOPPED", "startedBy": started_by, "clusterArn": cluster_arn})
        return bool(EventPattern(None, pattern).matches_event(event))

    assert heard("aws.ecs", "cloudrec", cluster) and heard("aws.ecs", "ecs-svc/1234567890", cluster)
    assert heard(recorder_exits.WORKER_SOURCE, "cloudrec", cluster)
    assert not heard("aws.ecs", "cloudrec", other) and not heard("aws.ecs", "someone-else", cluster)


def test_the_templates_lint_clean_with_the_serverless_rules(stacks: dict[str, Any], tmp_path: Path) -> None:
    translated = tmp_path / "translated.json"
    translated.write_text(json.dumps(stacks["translated"]))
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--append-rules",
                           "cfn_lint_serverless.rules", "--", str(stacks["package"] / "sam.json"), str(translated)],
                          capture_output=True, text=True, timeout=300)
    findings = [line.split()[0] for line in lint.stdout.splitlines() if line[:1] in "EW" and line[1:2].isalnum()]
    assert findings, lint.stdout + lint.stderr  # the serverless rules ran (they have findings we accept)
    assert set(findings) <= set(ACCEPTED_RULES), lint.stdout


def test_make_deploy_says_what_a_new_stack_needs_and_updates_keep_what_is_not_given(
        emulation: Emulation, stacks: dict[str, Any]) -> None:
    s3, cfn = emulation.client("s3"), emulation.client("cloudformation")
    bucket = deploy.artifacts_bucket(s3, emulation.client("sts"), REGION)
    rehearsed, _ = rehearsal.rehearsable(stacks["translated"])
    with pytest.raises(deploy.DeployError) as refused:
        deploy.deploy(cfn, s3, bucket, rehearsed, "cloudrec-new", {"RecorderImage": "r:1"}, timeout_s=60)
    assert "RecorderSubnets=" in str(refused.value) and "ApiCertificateArn=" in str(refused.value)
    assert "RecorderImage=" not in str(refused.value)
    with pytest.raises(deploy.DeployError, match="no such parameter: JanusUrl"):
        deploy.deploy(cfn, s3, bucket, rehearsed, STACKS[0], {"JanusUrl": "x"}, timeout_s=60)
    with pytest.raises(deploy.DeployError, match="stack name"):
        deploy.deploy(cfn, s3, bucket, rehearsed, "1-not-a-name", {}, timeout_s=60)
    # a second deploy changes what it is given and keeps the rest: shown on a small template,
    # as moto fails to update functions that have layers
    small = {"Parameters": {"Required": {"Type": "String"}, "Days": {"Type": "Number", "Default": 30},
                            "Name": {"Type": "String", "Default": "a"}},
             "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {
                 "MessageRetentionPeriod": {"Fn::Sub": "${Days}00"}}}}}
    deploy.deploy(cfn, s3, bucket, small, "cloudrec-small", {"Required": "x", "Days": "14"}, timeout_s=60)
    assert deploy.deploy(cfn, s3, bucket, small, "cloudrec-small", {"Name": "b"}, timeout_s=60) == "UPDATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName="cloudrec-small")["Stacks"][0]["Parameters"]}
    assert params == {"Required": "x", "Days": "14", "Name": "b"}


def test_the_readme_lists_every_parameter(stacks: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Deploy to AWS"):readme.index("**What the stack creates**")]
    listed = set(re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in table.splitlines()
                                                  if line.startswith("| `"))))
    assert listed == set(stacks["translated"]["Parameters"])


def test_make_image_says_when_docker_is_not_there(tmp_path: Path) -> None:
    (tmp_path / "python").symlink_to(sys.executable)
    done = subprocess.run([sys.executable, "-m", "infra.aws.image"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": str(tmp_path)}, timeout=60)
    assert done.returncode == 2
    assert "the docker command is not installed" in done.stderr and "docker build -f recorder_container" in done.stderr


def _run_function(emulation: Emulation, config: dict[str, Any], event: dict[str, Any], logical: str) -> Any:
    """Invoke a deployed function as Lambda does: its handler, its environment only, its own key."""
    env = {**config["Environment"]["Variables"], **_local(emulation, logical)}
    script = ("import json, sys; from infra.local.pump import LambdaContext; import app; "
              f"print(json.dumps(app.{config['Handler'].split('.')[1]}(json.load(sys.stdin), "
              f"LambdaContext({config['FunctionName']!r}))))")
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(event), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _local(emulation: Emulation, key: str) -> dict[str, str]:
    """What a function gets in the rehearsal besides its deployed environment: the emulation's
    address, credentials named after the function, and leave to call back a receiver on 127.0.0.1."""
    return {"CLOUDREC_AWS_ENDPOINT": emulation.url, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": REGION, "CLOUDREC_ALLOW_PRIVATE_URLS": "1", "PATH": os.environ["PATH"],
            "PYTHONDONTWRITEBYTECODE": "1"}


def _sdk(port: int) -> Any:
    http = HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http", reqTimeout=30)
    return trtc_client.TrtcClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", ClientProfile(
        httpProfile=http))


def test_the_deployed_functions_serve_and_need_no_more_than_their_roles(
        emulation: Emulation, stacks: dict[str, Any], tmp_path: Path) -> None:
    stack = STACKS[0]
    functions = {logical: _function(emulation, stack, logical) for logical in template.FUNCTIONS}
    api_env = {**functions["APIHandler"]["Environment"]["Variables"], **_local(emulation, "APIHandler")}
    # the operator registers an app with the admin CLI, configured from the stack's outputs
    receiver = CallbackReceiver(CALLBACK_KEY)
    admin_env = {**deploy.admin_env(emulation.client("cloudformation"), stack), **_local(emulation, "admin")}
    assert admin_env["CLOUDREC_TASKS_TABLE"] == api_env["CLOUDREC_TASKS_TABLE"]
    subprocess.run([sys.executable, "-m", "chalicelib.admin", "add-app", "--sdkappid", str(SDKAPPID), "--secret-id",
                    SECRET_ID, "--secret-key", SECRET_KEY, "--usersig-key", USERSIG_KEY, "--janus-url",
                    "http://127.0.0.1:9/janus", "--callback-url", receiver.start(), "--callback-key", CALLBACK_KEY],
                   cwd=ROOT, env=admin_env, check=True, capture_output=True, timeout=60)
    emulation.recording.write_text("")
    emulation.record(True)
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "infra.local.api_server", "--port", str(port)], cwd=ROOT,
                           env=api_env, stdout=(tmp_path / "api.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _answers(port), 30, "the API")
        client = _sdk(port)
        create = models.CreateCloudRecordingRequest()
        create.from_json_string(json.dumps(create_params("recorder_1", sdkappid=SDKAPPID, key=USERSIG_KEY)))
        task_id = client.CreateCloudRecording(create).TaskId
        # the recording waits for a warm worker; there is none here, so after the claim wait the
        # fallback function starts a dedicated recorder
        assert [d.task_id for d in _dispatches(emulation, api_env["CLOUDREC_DISPATCH_QUEUE"], 0)] == [task_id]
        [waited] = _dispatches(emulation, api_env["CLOUDREC_FALLBACK_QUEUE"], 2 * float(api_env["CLOUDREC_CLAIM_WAIT_S"]))
        assert waited.task_id == task_id
        started = _run_function(emulation, functions["DispatchFallback"], {"Records": [waited.record]},
                                "DispatchFallback")
        assert started == {"started": 1}
        describe = models.DescribeCloudRecordingRequest()
        describe.SdkAppId, describe.TaskId = SDKAPPID, task_id
        assert client.DescribeCloudRecording(describe).Status in ("Idle", "InProgress")
        delete = models.DeleteCloudRecordingRequest()
        delete.SdkAppId, delete.TaskId = SDKAPPID, task_id
        assert client.DeleteCloudRecording(delete).TaskId == task_id
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=10)
    # the fallback launched the recorder: a Fargate task of the stack's task definition, in its cluster
    ecs = emulation.client("ecs")
    cluster = api_env["CLOUDREC_ECS_CLUSTER"]
    launched = ecs.describe_tasks(cluster=cluster, tasks=ecs.list_tasks(cluster=cluster)["taskArns"])["tasks"]
    assert [t["taskDefinitionArn"] for t in launched] == [api_env["CLOUDREC_ECS_TASK_DEFINITION"]]
    # ECS tells of the task stopping (it never started): RecorderStopped hands the task on at once
    stopped = {**launched[0], "lastStatus": "STOPPED", "stoppedReason": "CannotPullContainerError: rehearsal"}
    event = _eventbridge("aws.ecs", "ECS Task State Change", stopped)
    assert recorder_exits.parse(event) is not None
    assert _run_function(emulation, functions["RecorderStopped"], event, "RecorderStopped") == {"handled": 1}
    for logical in ("ReapRecorders", "DeliverBackups", "SweepOutputs"):
        _run_function(emulation, functions[logical], _eventbridge("aws.events", "Scheduled Event", {}), logical)
    # the queued events reach the app's receiver through the callbacks function, signed
    sqs = emulation.client("sqs")
    queue = sqs.get_queue_url(QueueName=api_env["CLOUDREC_EVENTS_QUEUE"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"])
        if not got.get("Messages"):
            break
        records = [sqs_record(m, queue_arn, REGION) for m in got["Messages"]]
        result = _run_function(emulation, functions["DeliverCallbacks"], {"Records": records}, "DeliverCallbacks")
        assert result == {"batchItemFailures": []}
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=got["Messages"][0]["ReceiptHandle"])
    assert receiver.events and receiver.bad_signatures == 0
    # the task ended (deleted; its recorder gone): 302, as the user asked for it
    assert [(e["EventType"], e["EventInfo"]["TaskId"]) for e in receiver.events] == [(302, task_id)]
    emulation.record(False)
    _judge(emulation, stack, functions)


@dataclasses.dataclass(frozen=True)
class _Waiting:
    task_id: str
    record: dict[str, Any]  # the message as Lambda hands it to a function


def _dispatches(emulation: Emulation, queue: str, wait_s: float) -> list[_Waiting]:
    """The dispatches on a queue (received and deleted, as a consumer that succeeded does),
    waiting up to `wait_s` for the first (a fallback's comes after the claim wait)."""
    sqs = emulation.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out: list[_Waiting] = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                     WaitTimeSeconds=0 if out else math.ceil(wait_s)).get("Messages"):
        for message in got:
            parsed = dispatch.Dispatch.parse(message["Body"])
            assert parsed is not None, message["Body"]
            out.append(_Waiting(parsed.task_id, sqs_record(message, arn, REGION)))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_a_worker_may_claim_and_host_recordings_and_no_more(emulation: Emulation, stacks: dict[str, Any]) -> None:
    """What a warm worker does (recorder_container/worker.py), judged against the policy
    CloudFormation gave the workers' role: claim dispatches and tasks, assume the scoped role
    for a recording, tell of its recorders' exits, protect itself from scale-in. Nothing of the
    other stack's, nothing of what only the functions or a task's own recorder may do."""
    own, other = (_resources(emulation, name) for name in STACKS)
    iam = emulation.client("iam")
    role = own["WorkerTaskRole"]["PhysicalResourceId"]
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["cloudrec-worker"]
    policy = _document(iam.get_role_policy(RoleName=role, PolicyName="cloudrec-worker")["PolicyDocument"])
    env = _function(emulation, STACKS[0], "APIHandler")["Environment"]["Variables"]
    prefix = f"{REGION}:{ACCOUNT}"

    def queue(resources: dict[str, dict[str, Any]], name: str) -> str:
        return f"arn:aws:sqs:{prefix}:{resources[name]['PhysicalResourceId'].rsplit('/', 1)[1]}"

    def arn(resources: dict[str, dict[str, Any]], name: str) -> str:
        return str(iam.get_role(RoleName=resources[name]["PhysicalResourceId"])["Role"]["Arn"])

    tasks = f"arn:aws:dynamodb:{prefix}:table/{env['CLOUDREC_TASKS_TABLE']}"
    bus = f"arn:aws:events:{prefix}:event-bus/default"
    own_task = f"arn:aws:ecs:{prefix}:task/{env['CLOUDREC_ECS_CLUSTER']}/0123456789abcdef0123456789abcdef"
    other_task = own_task.replace(f"task/{STACKS[0]}/", f"task/{STACKS[1]}/")
    source = {"events:source": [recorder_exits.WORKER_SOURCE]}
    allowed = [
        *[(f"sqs:{action}", queue(own, "DispatchQueue"), {}) for action in (
            "GetQueueUrl", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility")],
        ("dynamodb:GetItem", tasks, {}), ("dynamodb:UpdateItem", tasks, {}),
        ("sts:AssumeRole", arn(own, "RecorderScopedRole"), {}),
        ("events:PutEvents", bus, source),
        ("ecs:UpdateTaskProtection", own_task, {}), ("ecs:GetTaskProtection", own_task, {}),
    ]
    denied = [
        ("sqs:ReceiveMessage", queue(other, "DispatchQueue"), {}),
        ("sqs:ReceiveMessage", queue(own, "DispatchFallbackQueue"), {}),
        ("sqs:SendMessage", queue(own, "EventsQueue"), {}),  # a task's events are its recorder's to send
        ("dynamodb:DeleteItem", tasks, {}), ("dynamodb:PutItem", tasks, {}),
        ("dynamodb:GetItem", tasks.replace("-tasks", "-apps"), {}),
        ("dynamodb:UpdateItem", tasks.replace(f"table/{STACKS[0]}-", f"table/{STACKS[1]}-"), {}),
        ("s3:GetObject", f"arn:aws:s3:::{env['CLOUDREC_INTERNAL_BUCKET']}/backup/any", {}),
        ("kms:Decrypt", f"arn:aws:kms:{prefix}:key/{own['StorageKeysKey']['PhysicalResourceId']}", {}),
        ("sts:AssumeRole", arn(other, "RecorderScopedRole"), {}),
        ("sts:AssumeRole", arn(own, "ApiHandlerRole"), {}),
        ("events:PutEvents", bus, {"events:source": ["aws.ecs"]}),  # no forged ECS events
        ("events:PutEvents", bus, {"events:source": [recorder_exits.WORKER_SOURCE, "aws.ecs"]}),
        ("ecs:UpdateTaskProtection", other_task, {}),
        ("ecs:RunTask", env["CLOUDREC_ECS_TASK_DEFINITION"], {}),
        ("ecs:StopTask", own_task, {}),
    ]
    results = iam_simulate.simulate([policy], allowed + denied, f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/worker")
    decided = dict(zip([(a, r, json.dumps(c)) for a, r, c in allowed + denied], results, strict=True))
    assert [call for call, result in decided.items() if result != "Allowed"] == [
        (a, r, json.dumps(c)) for a, r, c in denied]


def _document(policy: Any) -> dict[str, Any]:
    """A role policy as IAM returns it. moto answers with the Python text of the template's
    object for a policy CloudFormation made (the resolved values, in Python's quoting)."""
    if isinstance(policy, dict):
        return policy
    return dict(ast.literal_eval(policy))


def _eventbridge(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"version": "0", "id": "rehearsal", "source": source, "detail-type": detail_type, "account": ACCOUNT,
            "region": REGION, "time": "2026-11-30T00:00:00Z", "resources": [], "detail": detail}


def _answers(port: int) -> bool:
    try:
        requests.post(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except requests.ConnectionError:
        return False


def _judge(emulation: Emulation, stack: str, functions: dict[str, dict[str, Any]]) -> None:
    """Every call a function made is allowed by the policy CloudFormation gave its role."""
    resources = _resources(emulation, stack)
    key = emulation.client("kms").describe_key(KeyId=resources["StorageKeysKey"]["PhysicalResourceId"])
    iam = emulation.client("iam")
    task_roles = [iam.get_role(RoleName=resources[name]["PhysicalResourceId"])["Role"]["Arn"]
                  for name in ("RecorderTaskRole", "RecorderExecutionRole")]
    arns = rehearsal.Arns(emulation.client, REGION, ACCOUNT, key["KeyMetadata"]["Arn"], task_roles)
    made = [c for c in rehearsal.calls(emulation.recording.read_text(), arns) if c.caller in functions]
    key_policy = json.loads(emulation.client("kms").get_key_policy(KeyId=key["KeyMetadata"]["KeyId"],
                                                                   PolicyName="default")["Policy"])
    judged: dict[str, set[str]] = {}
    for logical, config in functions.items():
        own = sorted({(c.action, c.resource) for c in made if c.caller == logical})
        if not own:
            continue
        role = config["Role"].rsplit("/", 1)[1]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        assert names == [f"cloudrec-{logical}"]  # the function's own policy, not a shared one
        policies = [_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]) for name in names]
        results = iam_simulate.simulate(policies, [(action, resource, {}) for action, resource in own],
                                        f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{logical}", key_policy=key_policy)
        denied = [call for call, result in zip(own, results, strict=True) if result != "Allowed"]
        assert not denied, (logical, denied)
        judged[logical] = {action for action, _ in own}
    # the rehearsal exercised the functions that dispatch and launch recorders, move events and read tasks
    assert {"APIHandler", "DispatchFallback", "RecorderStopped", "DeliverCallbacks", "ReapRecorders"} <= set(judged)
    assert {"sqs:SendMessage", "kms:GenerateDataKey"} <= judged["APIHandler"]
    assert {"ecs:RunTask", "iam:PassRole", "dynamodb:UpdateItem"} <= judged["DispatchFallback"]
