"""What of a cloudrec stack the AWS emulation (moto's CloudFormation) can deploy.

moto creates most of the template's resource types. The rest fall in two kinds, both named
here so the rehearsal says exactly what it did not create:
- types moto has no model for: it skips them and the stack still completes (alarms, the
  on-failure destination, the mail subscription, the custom domain, the workers' scalable
  target and scaling policy: moto has no Application Auto Scaling resources in CloudFormation);
- API Gateway from an OpenAPI body: moto makes the REST API without its methods, and then
  refuses the deployment ("The REST API doesn't contain any methods"). The rehearsal leaves
  the API's gateway side out and calls the API function's handler itself, against the
  deployed tables, queue and bucket.
One value is added: moto's RunTask sums the containers' memory, which a Fargate task
definition need not give (ECS takes the task's); the recorder's and the worker's containers get
a reservation.
cfn-lint (with its serverless rules, on the SAM and the translated template) covers them.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from moto.backends import get_backend
from moto.cloudformation.parsing import get_model_map

# the API's gateway side: moto cannot deploy a REST API defined by an OpenAPI body
GATEWAY_TYPES = {"AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage",
                 "AWS::ApiGateway::DomainName", "AWS::ApiGateway::BasePathMapping"}
SERVICES = ("apigateway", "cloudwatch", "dynamodb", "ecs", "events", "iam", "kms", "lambda", "logs", "s3", "sns",
            "sqs")


def emulated_types() -> set[str]:
    for service in SERVICES:  # moto registers a service's resource types when its backend loads
        get_backend(service)  # type: ignore[call-overload]
    return set(get_model_map())


def _mentions(node: Any, names: set[str]) -> bool:
    text = json.dumps(node)
    return any(f'"Ref": "{n}"' in text or f'["{n}", ' in text or f"${{{n}" in text for n in names)


def rehearsable(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The translated template less what the emulation cannot deploy, and what was left out:
    {"not emulated": [types moto skips], "gateway": [logical ids left out]}."""
    out = copy.deepcopy(template)
    resources: dict[str, Any] = out["Resources"]
    gateway = {name for name, r in resources.items() if r["Type"] in GATEWAY_TYPES}
    # and what grants the gateway its calls (a permission naming the REST API)
    gateway |= {name for name, r in resources.items()
                if r["Type"] == "AWS::Lambda::Permission" and _mentions(r["Properties"], gateway)}
    for name in gateway:
        del resources[name]
    for resource in resources.values():
        if "DependsOn" in resource:
            depends = resource["DependsOn"] if isinstance(resource["DependsOn"], list) else [resource["DependsOn"]]
            resource["DependsOn"] = [d for d in depends if d not in gateway]
    for resource in resources.values():
        if resource["Type"] == "AWS::ECS::TaskDefinition":  # moto sums the containers' memory for
            for container in resource["Properties"]["ContainerDefinitions"]:  # RunTask; Fargate takes the task's
                container.setdefault("MemoryReservation", 512)
    skipped = {r["Type"] for r in resources.values()} - emulated_types()
    # an output naming what is not made would fail the whole stack in moto
    absent = gateway | {name for name, r in resources.items() if r["Type"] in skipped}
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not _mentions(v, absent)}
    return out, {"not emulated": sorted(skipped), "gateway": sorted(gateway)}


# What each recorded request asks IAM for. A transaction asks for each of its items' actions.
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_S3_METHODS = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject", "DELETE": "s3:DeleteObject"}


@dataclasses.dataclass(frozen=True)
class Call:
    """One AWS request a function made, as IAM judges it."""

    caller: str  # the access key id the function ran with (its name, in the rehearsal)
    action: str
    resource: str


def _body(entry: dict[str, Any]) -> bytes:
    raw = entry.get("body") or ""
    return base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()


def _json_calls(target: str, body: dict[str, Any], arn: Arns) -> list[tuple[str, str]]:
    service, _, op = target.partition(".")
    if service.startswith("DynamoDB"):
        if op == "TransactWriteItems":
            return [(f"dynamodb:{_TRANSACT[kind]}", arn.table(item[kind]["TableName"]))
                    for item in body["TransactItems"] for kind in item]
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{op}", arn.table(name)) for name in body["RequestItems"]]
        return [(f"dynamodb:{op}", arn.table(body["TableName"], body.get("IndexName")))]
    if service == "AmazonSQS":
        name = body.get("QueueName") or body["QueueUrl"].rsplit("/", 1)[1]
        return [(f"sqs:{op}", arn.queue(name))]
    if service == "TrentService":
        return [(f"kms:{op}", arn.key(body.get("KeyId")))]
    if service.startswith("AmazonEC2ContainerService"):
        if op == "RunTask":  # ECS passes the task definition's roles: iam:PassRole on each
            return [("ecs:RunTask", body["taskDefinition"])] + [("iam:PassRole", role) for role in arn.task_roles]
        return [(f"ecs:{op}", body.get("task", "*"))]
    return [(f"{service}:{op}", "*")]


def _s3_calls(method: str, url: str, body: bytes) -> list[tuple[str, str]]:
    parts = urllib.parse.urlsplit(url)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if not bucket:
        return [("s3:ListAllMyBuckets", "*")]
    if "delete" in query:
        keys = re.findall(rb"<Key>(.*?)</Key>", body)
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k.decode()}") for k in keys]
    if not key:
        return [("s3:ListBucket" if method == "GET" else f"s3:{method}Bucket", f"arn:aws:s3:::{bucket}")]
    return [(_S3_METHODS[method], f"arn:aws:s3:::{bucket}/{urllib.parse.unquote(key)}")]


def calls(recording: str, arn: Arns) -> list[Call]:
    """The calls in moto's recording (one JSON request per line), by caller."""
    out: list[Call] = []
    for line in recording.splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        caller = re.search(r"Credential=([^/]+)/", headers.get("authorization", ""))
        if caller is None:
            continue
        body = _body(entry)
        target = headers.get("x-amz-target")
        if target:
            found = _json_calls(target, json.loads(body or b"{}"), arn)
        elif "/s3/" in headers["authorization"]:
            found = _s3_calls(entry["method"], entry["url"], body)
        else:
            found = [(f"query:{urllib.parse.parse_qs(body.decode()).get('Action', ['?'])[0]}", "*")]
        out += [Call(caller.group(1), action, resource) for action, resource in found]
    return out


class Arns:
    """Resource ARNs of the emulated account, as IAM names them. A Decrypt names no key (its
    ciphertext does): it is judged against the stack's own key, the only one the code uses.
    `task_roles` are the roles of the recorder's task definition, which RunTask passes (moto's
    task definitions made by CloudFormation do not keep them)."""

    def __init__(self, client: Callable[[str], Any], region: str, account: str, stack_key: str,
                 task_roles: list[str]) -> None:
        self._kms = client("kms")
        self._prefix = f"{region}:{account}"
        self._keys: dict[str | None, str] = {None: stack_key}
        self.task_roles = task_roles

    def table(self, name: str, index: str | None = None) -> str:
        return f"arn:aws:dynamodb:{self._prefix}:table/{name}" + (f"/index/{index}" if index else "")

    def queue(self, name: str) -> str:
        return f"arn:aws:sqs:{self._prefix}:{name}"

    def key(self, key_id: str | None) -> str:
        if key_id not in self._keys:
            self._keys[key_id] = str(self._kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
        return self._keys[key_id]


def restore_key_policies(template: dict[str, Any], stack_resources: dict[str, dict[str, Any]], kms: Any,
                         account: str) -> int:
    """moto keeps a template's KMS key policy as an object, which its own DescribeKey then fails
    to read (500); store each key's policy again as the JSON text KMS keeps. Returns how many."""
    restored = 0
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::KMS::Key":
            continue
        text = json.dumps(resource["Properties"]["KeyPolicy"])
        text = re.sub(r'\{"Fn::Sub": "([^"]*)"\}', lambda m: json.dumps(
            m.group(1).replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", account)), text)
        assert "Fn::" not in text, text
        kms.put_key_policy(KeyId=stack_resources[name]["PhysicalResourceId"], PolicyName="default", Policy=text)
        restored += 1
    return restored
