"""Deploy a packaged cloudrec (`make package`, build/package) as one CloudFormation stack.

    python -m infra.aws.deploy up --stack NAME [--param Key=Value ...]
    python -m infra.aws.deploy env --stack NAME     # the admin CLI's settings for that stack

`up` uploads the functions' zip and layers to an artifacts bucket (made once per account and
region), points the template at them, and creates or updates the stack (CloudFormation expands
the SAM transform itself). It waits for the stack and, when it fails, prints CloudFormation's
reason for each resource that failed. The deploy rehearsal runs the same code against the
local AWS emulation, which cannot expand SAM: there the template is translated here first
(`translate=True`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import boto3

PACKAGE = Path("build/package")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
# CloudFormation's name rule, kept to the length the stack's queue names leave room for
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,59}")
_INLINE_LIMIT = 51_200  # bytes of TemplateBody; larger templates go by TemplateURL
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
_FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
           "UPDATE_ROLLBACK_FAILED", "DELETE_COMPLETE", "DELETE_FAILED"}


class DeployError(Exception):
    pass


def artifacts_bucket(s3: Any, sts: Any, region: str) -> str:
    """The account's bucket for cloudrec's deployment artifacts in this region (made if missing)."""
    name = f"cloudrec-artifacts-{sts.get_caller_identity()['Account']}-{region}"
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **config)
    return name


def upload(s3: Any, package: Path, bucket: str) -> dict[str, Any]:
    """The packaged template with each local zip (CodeUri, ContentUri) replaced by its copy in
    `bucket`, stored under its content hash (an unchanged zip is not uploaded again)."""
    template: dict[str, Any] = json.loads((package / "sam.json").read_text())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for field in ("CodeUri", "ContentUri"):
            local = props.get(field)
            if not isinstance(local, str) or local.startswith("s3://"):
                continue
            path = package / local
            key = f"artifacts/{hashlib.sha256(path.read_bytes()).hexdigest()}.zip"
            s3.upload_file(str(path), bucket, key)
            props[field] = f"s3://{bucket}/{key}"
    return template


def translate(template: dict[str, Any], region: str) -> dict[str, Any]:
    """The SAM template as plain CloudFormation (what CloudFormation's transform would make)."""
    import os

    from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

    class _NoManagedPolicies:  # the template names no managed policy by name
        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    return dict(transform(copy.deepcopy(template), {}, _NoManagedPolicies()))


def _stack_status(cfn: Any, stack: str) -> str | None:
    try:
        return str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _failures(cfn: Any, stack: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
            for e in events if e["ResourceStatus"].endswith("FAILED")]


def deploy(cfn: Any, s3: Any, bucket: str, template: dict[str, Any], stack: str, parameters: dict[str, str],
           timeout_s: float = 3600.0) -> str:
    """Create or update `stack`; returns its final status or raises DeployError with the reasons."""
    if not STACK_NAME.fullmatch(stack):
        raise DeployError(f"stack name {stack!r}: letters, digits and '-', starting with a letter, at most 60")
    body = json.dumps(template)
    source: dict[str, str] = {"TemplateBody": body}
    if len(body) > _INLINE_LIMIT:
        key = f"templates/{stack}/{hashlib.sha256(body.encode()).hexdigest()}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        source = {"TemplateURL": f"https://{bucket}.s3.amazonaws.com/{key}"}
    params: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    declared = template.get("Parameters", {})
    if unknown := sorted(set(parameters) - set(declared)):
        raise DeployError(f"no such parameter: {', '.join(unknown)} (README: Deploy to AWS)")
    status = _stack_status(cfn, stack)
    if status is None:
        if missing := [k for k, v in declared.items() if "Default" not in v and k not in parameters]:
            raise DeployError("a new stack needs " + "; ".join(
                f"{k}= ({declared[k].get('Description', declared[k]['Type'])})" for k in missing))
        cfn.create_stack(StackName=stack, Parameters=params, Capabilities=CAPABILITIES, **source)
    else:  # what is not given keeps the value it has (given again: the AWS emulation's
        # UsePreviousValue fails on a parameter that took its default), a NoEcho one (ConsoleKey)
        # by UsePreviousValue: CloudFormation describes it as "****"
        previous = {p["ParameterKey"]: p["ParameterValue"]
                    for p in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])}
        params += [{"ParameterKey": k, "UsePreviousValue": True} if declared[k].get("NoEcho") else
                   {"ParameterKey": k, "ParameterValue": previous[k]} for k in declared
                   if k not in parameters and k in previous]
        try:
            cfn.update_stack(StackName=stack, Parameters=params, Capabilities=CAPABILITIES, **source)
        except cfn.exceptions.ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return "UPDATE_COMPLETE"
            raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _stack_status(cfn, stack) or "DELETE_COMPLETE"
        if status in _DONE:
            return status
        if status in _FAILED:
            raise DeployError(f"{stack}: {status}\n  " + "\n  ".join(_failures(cfn, stack)))
        time.sleep(5)
    raise DeployError(f"{stack}: still not complete after {timeout_s:.0f} s")


def admin_env(cfn: Any, stack: str) -> dict[str, str]:
    """The stack's settings as the admin CLI reads them (the template's outputs name them)."""
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    return {o["Description"]: o["OutputValue"] for o in outputs
            if o.get("Description", "").startswith("CLOUDREC_")}


def _parameters(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param {pair!r}: expected Key=Value")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.aws.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create or update the stack from build/package")
    up.add_argument("--stack", required=True)
    up.add_argument("--param", action="append", default=[], metavar="Key=Value",
                    help="a template parameter (README: Deploying to AWS)")
    up.add_argument("--package", type=Path, default=PACKAGE)
    env = sub.add_parser("env", help="print the admin CLI's settings for a deployed stack")
    env.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    session = boto3.session.Session()
    cfn = session.client("cloudformation")
    if args.command == "env":
        for name, value in sorted(admin_env(cfn, args.stack).items()):
            print(f"export {name}={value}")
        return 0
    if not (args.package / "sam.json").exists():
        raise SystemExit(f"{args.package}/sam.json is missing: run `make package` first")
    s3 = session.client("s3")
    bucket = artifacts_bucket(s3, session.client("sts"), session.region_name or "us-east-1")
    template = upload(s3, args.package, bucket)
    try:
        status = deploy(cfn, s3, bucket, template, args.stack, _parameters(args.param))
    except DeployError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.stack}: {status}")
    for output in cfn.describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", []):
        if output["OutputKey"] == "ApiDomainTarget":
            print(f"Point your API domain (ApiDomainName) at {output['OutputValue']}.")
    print(f"Then register an app (its Janus and callback settings) with the stack's settings:\n"
          f"  eval \"$(python -m infra.aws.deploy env --stack {args.stack})\"\n"
          f"  python -m chalicelib.admin add-app --sdkappid <id> --secret-id <SecretId> "
          f"--janus-url https://janus.example.com/janus --callback-url https://example.com/trtc/callback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
