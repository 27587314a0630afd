"""The recorder records as its image runs it in AWS (issue 13): the keeper, root with only the
capabilities the task definition leaves it, runs the recorder as nobody, in the environment the
generated task definition and RunTask give it and no other, with read-only code and one writable
work dir. No Docker: tests/support/recorder_image.py lays the image out and plays the ECS agent.
The local stack runs with the ECS launcher, as deployed, and its RunTask goes to the AWS
emulation. Janus, a publisher and the recorder share a network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib import config
from chalicelib.config import Settings
from chalicelib.naming import b64_name
from infra.aws import template
from infra.local.stack import EMULATOR_ACCOUNT, RECORDER_ROLE
from tests.support import netns
from tests.support.media import BUCKET, media_env
from tests.support.media_checks import Recording, probe
from tests.support.media_scenario import RED, call, join, stop_and_wait
from tests.support.recorder_image import (
    DOCKERFILE,
    Image,
    Launch,
    Layout,
    capability_names,
    children,
    environ,
    launches,
    lay_out,
    missing_tools,
    python_argv,
    read_only_bind,
    register,
    resolve,
    snapshot,
    status,
    with_capabilities,
)
from tests.support.sdk import create_request, describe
from tests.support.stack import ROOT, SDKAPPID, LocalStack, running_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.netns]
ROOM, PUBLISHER, ROBOT = "6501", "alice", "rec_deployed"
RECORD_S = 8.0  # of media, from the recorder's first
# a stack called cloudrec names its resources as the local stack does (infra/aws/template.py)
PSEUDO = {"AWS::StackName": "cloudrec", "AWS::Partition": "aws", "AWS::AccountId": EMULATOR_ACCOUNT}


def test_the_recorder_records_as_deployed(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(missing)
    if not config.CLOUDREC_IN_NETNS.get(os.environ):  # media moves only inside a namespace: go there
        here = f"{Path(__file__).relative_to(ROOT)}::{test_the_recorder_records_as_deployed.__name__}"
        with netns.namespace(f"cloudrec-d{os.getpid()}") as name:
            run = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "pytest", here, "-p",
                                  "no:cacheprovider"], cwd=ROOT, env={**os.environ, "CLOUDREC_IN_NETNS": name},
                                 capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and re.search(r"\b1 passed", run.stdout) and " skipped" not in run.stdout, \
            run.stdout[-12000:] + run.stderr[-4000:]
        return
    with deployment(tmp_path) as d:
        seen = asyncio.run(record(d))
        check(seen, d)


def check(seen: Observed, d: Deployment) -> None:
    log = d.log.read_text(errors="replace")
    assert seen.keeper_code == 0, log[-6000:]
    assert not re.search("Traceback|Permission denied|Read-only file system|Operation not permitted", log), log[-6000:]
    # the keeper: root with what the task definition leaves a container; the recorder: nobody, no capabilities
    kept = set(seen.launch.capabilities)
    assert kept == set(template.KEEPER_CAPABILITIES)
    assert seen.keeper["Uid"].split() == ["0"] * 4 and capability_names(seen.keeper["CapEff"]) == kept
    assert seen.recorder["Uid"].split() == seen.recorder["Gid"].split() == [str(d.uid)] * 4
    assert seen.recorder["Groups"] == ""
    assert capability_names(seen.recorder["CapEff"]) == capability_names(seen.recorder["CapPrm"]) == set()
    # its AWS credentials are its keeper's file, which only the two of them may read; gone after
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & seen.recorder_env.keys()
    credentials = Path(seen.recorder_env["AWS_CONFIG_FILE"]).parent
    assert seen.credentials[:2] == (0, d.uid) and seen.credentials[2] & 0o007 == 0, seen.credentials
    assert not credentials.exists()
    assert seen.health.returncode == 0, seen.health  # the task definition's health check, as ECS runs it
    # it wrote only in its work dir, and what it wrote is its own; the code is as the image has it
    assert any(path.endswith(".ts") for path in seen.work), seen.work  # segments not yet stored
    assert set(seen.work.values()) == set(owners(d.layout.work).values()) == {(d.uid, d.uid)}, seen.work
    assert snapshot(d.layout.code) == d.code
    # a keeper without its capabilities says why and stops
    failed = seen.without_capabilities
    assert failed.returncode == 1 and "the recorder's keeper failed" in failed.stdout, failed
    assert "Operation not permitted" in failed.stdout, failed
    # what the customer sees: one recorder, the task ended normally, its HLS in their bucket
    stack = d.stack
    assert len(d.launches_of(seen.task_id)) == 1 and not stack.callbacks.of(seen.task_id, 306)
    assert stack.callbacks.wait(seen.task_id, 302)["EventInfo"]["Payload"] == {"LeaveCode": 0}
    rec = Recording(stack.boto("s3"), seen.task_id)
    for kind, codec in (("video", "h264"), ("audio", "aac")):
        pl = rec.playlist(f"{SDKAPPID}_{ROOM}__UserId_s_{b64_name(PUBLISHER)}__UserId_e_main_{kind}.m3u8")
        assert pl.ended and pl.segments, pl.text
        assert abs(sum(pl.durations) - seen.seconds) <= 2.5, (pl.durations, seen.seconds)
        for segment in pl.segments:
            info = probe(rec.download(segment))
            assert info[kind]["codec"] == codec and info["frames"][kind] > 0, info


@dataclass
class Deployment:
    """The stack, the image laid out, and where the ECS agent's stand-in writes the container's log."""

    stack: LocalStack
    image: Image
    layout: Layout
    cluster: str
    uid: int  # the recorder's (the image's CLOUDREC_RECORDER_USER)
    code: dict[str, Any]  # the code as laid out
    log: Path

    def launches_of(self, task_id: str) -> list[Launch]:
        return [x for x in launches(self.stack.boto("ecs"), self.cluster)
                if x.override_env.get(config.CLOUDREC_TASK_ID.name) == task_id]

    def container_env(self, launch: Launch) -> dict[str, str]:
        """The container's environment (the image's, the task definition's, the overrides'), and what
        running it here needs besides."""
        return {
            **launch.environment(self.image),
            # the image's work dir, in this test's stand-in for the container's file system
            config.CLOUDREC_RUN_DIR.name: str(self.layout.work),
            # the image's Python finds its packages in its own site-packages and the code in WORKDIR
            # (the cwd); Debian's finds the venv's packages, mounted where the image has its own
            "PYTHONPATH": str(self.layout.site_packages),
            # the AWS emulation, and the keeper's own credentials: in AWS the task role's, which the
            # container reaches through the credentials address ECS puts in its environment
            config.CLOUDREC_AWS_ENDPOINT.name: self.stack.env[config.CLOUDREC_AWS_ENDPOINT.name],
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        }


@dataclass
class Observed:
    task_id: str
    launch: Launch
    without_capabilities: subprocess.CompletedProcess[str]
    keeper: dict[str, str]  # /proc status, while it records
    recorder: dict[str, str]
    recorder_env: dict[str, str]
    credentials: tuple[int, int, int]  # the credentials directory's uid, gid and mode
    health: subprocess.CompletedProcess[str]
    work: dict[str, tuple[int, int]]  # the work dir's owners, while it records
    seconds: float  # from the first media to the Delete
    keeper_code: int | None


@contextlib.contextmanager
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """The local stack as deployed, with what CloudFormation would have made for the recorder, and
    the image laid out."""
    image = Image.parse(DOCKERFILE.read_text())
    run_dir = image.env[config.CLOUDREC_RUN_DIR.name]
    assert run_dir in template.WRITABLE.values()  # the image's work dir is one of the task's volumes
    resources = template.build(Settings.from_env({}))["Resources"]
    api_env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    alias = resolve(resources["StorageKeysAlias"]["Properties"]["AliasName"], PSEUDO, {})
    # the API as deployed: it starts recorders with RunTask and seals storage keys with KMS
    deployed = {"CLOUDREC_LAUNCHER": api_env["CLOUDREC_LAUNCHER"],
                "CLOUDREC_KMS_KEY_ID": resolve(api_env["CLOUDREC_KMS_KEY_ID"], {"StorageKeysAlias": alias}, {}),
                "CLOUDREC_LAUNCH_GRACE_S": "",  # unset: the ECS launcher's default
                # no warm worker takes it: the dedicated recorder the fallback starts is the one under test
                "CLOUDREC_WARM_WORKERS": "0"}
    with tempfile.TemporaryDirectory(prefix="cloudrec-image-") as root, \
            running_stack(tmp_path, **media_env(), **deployed) as stack:
        layout = lay_out(image, Path(root), run_dir)
        with read_only_bind(Path(sysconfig.get_paths()["purelib"]), layout.site_packages):
            # what CloudFormation would have made: the key, the cluster, the task definition
            kms = stack.boto("kms")
            kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
            s = Settings.from_env(stack.env)
            stack.boto("ecs").create_cluster(clusterName=s.ecs_cluster)
            names = {
                **PSEUDO, "AWS::Region": s.aws_region, "TasksTable": s.tasks_table, "AppsTable": s.apps_table,
                "LimitsTable": s.limits_table, "EventsQueue.QueueName": s.events_queue,
                "InternalBucket": s.internal_bucket, "StorageKeysAlias": alias,
                # the stack's stand-in for the scoped role (moto's STS lets anyone assume it)
                "RecorderScopedRole.Arn": stack.boto("iam").get_role(RoleName=RECORDER_ROLE)["Role"]["Arn"],
            }
            register(stack.boto("ecs"), s.ecs_task_definition, resources["RecorderTaskDefinition"]["Properties"],
                     lambda value: resolve(value, names, resources))
            stack.boto("s3").create_bucket(Bucket=BUCKET)
            yield Deployment(stack, image, layout, s.ecs_cluster, int(image.env[config.CLOUDREC_RECORDER_USER.name]),
                             snapshot(layout.code), tmp_path / "recorder-as-deployed.log")


async def record(d: Deployment) -> Observed:
    """A publisher in a room; a task for it through the API; the container its RunTask asks for,
    started as the ECS agent would; the task deleted after RECORD_S of media."""
    stack, layout = d.stack, d.layout
    alice = await join(stack, ROOM, PUBLISHER, RED, 440, create=True)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        task_id = str((await call(stack.client().CreateCloudRecording, create_request(ROBOT, room=ROOM))).TaskId)
        launch = (await call(wait_for, lambda: d.launches_of(task_id), 15, "the task's RunTask"))[0]
        env, command = d.container_env(launch), python_argv(d.image.cmd)
        without = await call(subprocess.run, with_capabilities((), command), cwd=layout.code, env=env,
                             capture_output=True, text=True, timeout=60)
        with open(d.log, "wb") as out:
            keeper = subprocess.Popen(with_capabilities(launch.capabilities, command), cwd=layout.code, env=env,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        await call(wait_for, lambda: keeper.poll() is not None or describe(stack, task_id).Status == "InProgress",
                   30, "the first media")
        assert keeper.poll() is None, d.log.read_text()[-6000:]
        started = time.monotonic()
        recorders = [pid for pid in children(keeper.pid) if b"recorder_container" in Path(
            f"/proc/{pid}/cmdline").read_bytes()]
        assert len(recorders) == 1, recorders
        recorder_env = environ(recorders[0])
        credentials = Path(recorder_env["AWS_CONFIG_FILE"]).parent.stat()
        health = await call(subprocess.run, with_capabilities(launch.capabilities, python_argv(
            template.HEALTH_COMMAND[1:])), cwd=layout.code, env=env, capture_output=True, text=True, timeout=30)
        keeper_status, recorder_status = status(keeper.pid), status(recorders[0])
        await asyncio.sleep(RECORD_S - 2 - (time.monotonic() - started))
        work = owners(layout.work)
        await asyncio.sleep(RECORD_S - (time.monotonic() - started))
        seconds = time.monotonic() - started
        await stop_and_wait(stack, task_id)
        code = await call(keeper.wait, 60)
    finally:
        if keeper is not None and keeper.poll() is None:
            keeper.terminate()  # our own child, by its pid
            try:
                keeper.wait(30)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()
        await alice.leave()
    return Observed(task_id, launch, without, keeper_status, recorder_status, recorder_env,
                    (credentials.st_uid, credentials.st_gid, credentials.st_mode & 0o777), health, work, seconds, code)


def owners(directory: Path) -> dict[str, tuple[int, int]]:
    """The owner (uid, gid) of `directory` and of everything under it."""
    return {str(p): (s.st_uid, s.st_gid) for p in (directory, *directory.rglob("*")) for s in [p.lstat()]}
