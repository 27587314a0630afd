"""The recorder image as ECS runs it, without Docker (no daemon where the tests run): its code
copied as its Dockerfile copies it, read-only to the recorder's user; its work dir a fresh
volume; its environment the image's ENV under the task definition's and RunTask's overrides;
its entry point started as root with only the capabilities the task definition leaves it.
Used by tests/e2e/test_recorder_as_deployed.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.stack import ROOT

DOCKERFILE = ROOT / "recorder_container" / "Dockerfile"
# the venv's interpreter may be where nobody cannot reach it (pyenv's, under /root, mode 700);
# Debian 12's is 3.11 too, so the venv's compiled packages load in it
SYSTEM_PYTHON = "/usr/bin/python3"
# where python:3.11-slim keeps what the image's `pip install` puts there
IMAGE_SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"
# what every container of the image has before the Dockerfile's ENV: the base image's own ENV
# (python:3.11-slim-bookworm) and HOME, which Docker sets for the container's user (root)
BASE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "HOME": "/root"}
# Docker's default capabilities (a container's before its task definition drops some), with
# their numbers in capabilities(7)
DOCKER_CAPABILITIES = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
                       "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18,
                       "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}


@dataclass(frozen=True)
class Image:
    """What the Dockerfile says of a container: its ENV, its WORKDIR, what it COPYs there, its CMD."""

    env: dict[str, str]
    workdir: str
    copies: tuple[tuple[str, str], ...]  # (in the repository, under WORKDIR)
    cmd: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Image:
        env: dict[str, str] = {}
        copies: list[tuple[str, str]] = []
        workdir, cmd = "/", ()
        for line in re.sub(r"\\\n", " ", text).splitlines():
            word, _, rest = line.strip().partition(" ")
            if word == "ENV":
                for pair in shlex.split(rest):
                    name, eq, value = pair.partition("=")
                    if not eq:
                        raise ValueError(f"ENV {rest!r}: only the NAME=value form is read here")
                    env[name] = value
            elif word == "WORKDIR":
                workdir = rest.strip()
            elif word == "COPY":
                parts = shlex.split(rest)
                if len(parts) != 2 or parts[0].startswith("--"):
                    raise ValueError(f"COPY {rest!r}: only `COPY source destination` is read here")
                copies.append((parts[0], parts[1]))
            elif word == "CMD":
                cmd = tuple(json.loads(rest))
        return cls(env, workdir, tuple(copies), cmd)


@dataclass(frozen=True)
class Layout:
    """The container's files, under `root`: the code (WORKDIR) root's and read-only to others,
    the work dir a fresh, empty volume, the image's site-packages (once mounted)."""

    root: Path
    code: Path
    work: Path
    site_packages: Path


def lay_out(image: Image, root: Path, work_dir: str) -> Layout:
    code = root / image.workdir.lstrip("/")
    for source, target in ((ROOT / s, code / t) for s, t in image.copies):
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    layout = Layout(root, code, root / work_dir.lstrip("/"), root / IMAGE_SITE_PACKAGES)
    layout.work.mkdir(parents=True)
    layout.site_packages.mkdir(parents=True)
    for path in (root, *root.rglob("*")):
        os.chown(path, 0, 0)
        path.chmod(0o755 if path.is_dir() else 0o644)
    return layout


def snapshot(directory: Path) -> dict[str, tuple[int, int, int, int]]:
    """What is under `directory`: each path's size, modification time, mode and owner."""
    return {str(p.relative_to(directory)): (s.st_size, s.st_mtime_ns, s.st_mode, s.st_uid)
            for p in directory.rglob("*") for s in [p.lstat()]}


@contextlib.contextmanager
def read_only_bind(source: Path, target: Path) -> Iterator[Path]:
    """`source` also at `target`, read-only (reachable there whatever the modes of `source`'s
    parents). Only in a mount namespace of the test's own (not its parent's), as `ip netns exec` makes."""
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        raise RuntimeError("a bind mount here would outlive the test: run it under `ip netns exec`")
    subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)], check=True, capture_output=True,
                   timeout=20)
    try:
        yield target
    finally:
        # at once, though a killed recorder's files may still be open: the tree is removed next
        subprocess.run(["umount", "--lazy", str(target)], capture_output=True, timeout=20)


# the properties that name a resource, as the template spells them
_NAME_PROPERTIES = ("TableName", "QueueName", "BucketName", "AliasName", "ClusterName", "Family", "RoleName")


def resolve(value: Any, names: Mapping[str, str], resources: Mapping[str, Any]) -> str:
    """A template value as it is locally: `names` gives what a `Ref` (a resource's logical id or a
    pseudo parameter) or an `Fn::GetAtt` ("Resource.Attribute") is, and a value that spells a
    resource's own name (its TableName, BucketName…) is that resource's. KeyError for a reference
    `names` does not know, ValueError for any other function."""
    if isinstance(value, str):
        return value
    for logical, resource in resources.items():
        props = resource.get("Properties", {})
        if any(props.get(p) == value for p in _NAME_PROPERTIES):
            return _named(logical, names)
    if "Ref" in value:
        return _named(value["Ref"], names)
    if "Fn::GetAtt" in value:
        return _named(".".join(value["Fn::GetAtt"]), names)
    if "Fn::Sub" in value:
        text, own = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
        local = {**names, **{k: resolve(v, names, resources) for k, v in own.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: _named(m.group(1), local), text)
    raise ValueError(f"cannot resolve {value!r}")


def _named(key: str, names: Mapping[str, str]) -> str:
    if key not in names:
        raise KeyError(f"the template refers to {key}: say which local resource that is")
    return names[key]


def register(ecs: Any, family: str, definition: dict[str, Any], resolved: Callable[[Any], str]) -> None:
    """Register the template's RecorderTaskDefinition (its Properties) as `family` with the AWS
    emulation's ECS, each value in its environment passed through `resolved`."""
    container = definition["ContainerDefinitions"][0]
    ecs.register_task_definition(
        family=family,
        # moto gives every FARGATE-compatible definition a network interface in a subnet the stack
        # would have to name before moto is up (their ids are random), and counts memory only per
        # container: registered as EC2-compatible, with the task's memory on its container.
        # RunTask still asks for FARGATE; the recorder's network here is the test's namespace.
        requiresCompatibilities=["EC2"],
        containerDefinitions=[{
            "name": container["Name"], "image": "cloudrec-recorder", "essential": True, "memory": 2048,
            "environment": [{"name": e["Name"], "value": resolved(e["Value"])} for e in container["Environment"]],
            "readonlyRootFilesystem": container["ReadonlyRootFilesystem"],
            "linuxParameters": {"capabilities": {
                "drop": list(container["LinuxParameters"]["Capabilities"]["Drop"])}},
        }],
    )


@dataclass(frozen=True)
class Launch:
    """A task RunTask started, as the ECS agent sees it: its container's environment from the task
    definition and from RunTask's overrides, and the capabilities the definition drops."""

    task_arn: str
    definition_env: dict[str, str]
    override_env: dict[str, str]
    dropped: tuple[str, ...]

    def environment(self, image: Image) -> dict[str, str]:
        """The container's environment as ECS makes it: the image's, then the task definition's,
        then the overrides' (each over the one before)."""
        return {**BASE_ENV, **image.env, **self.definition_env, **self.override_env}

    @property
    def capabilities(self) -> tuple[str, ...]:
        """What the container keeps of Docker's default capabilities."""
        return tuple(sorted(set(DOCKER_CAPABILITIES) - set(self.dropped)))


def launches(ecs: Any, cluster: str) -> list[Launch]:
    """The tasks RunTask started in `cluster` of the AWS emulation."""
    arns = ecs.list_tasks(cluster=cluster)["taskArns"]
    found = []
    for task in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []:
        container = ecs.describe_task_definition(
            taskDefinition=task["taskDefinitionArn"])["taskDefinition"]["containerDefinitions"][0]
        overrides = [o for o in task.get("overrides", {}).get("containerOverrides", [])
                     if o["name"] == container["name"]]
        found.append(Launch(
            task["taskArn"], {e["name"]: e["value"] for e in container.get("environment", [])},
            {e["name"]: e["value"] for o in overrides for e in o.get("environment", [])},
            tuple(container.get("linuxParameters", {}).get("capabilities", {}).get("drop", []))))
    return found


def with_capabilities(capabilities: tuple[str, ...], argv: list[str]) -> list[str]:
    """`argv` run by root with only `capabilities` (util-linux setpriv), as in a container that
    keeps only those."""
    keep = "".join(f",+{name.lower()}" for name in capabilities)
    return ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all{keep}", *argv]


def missing_tools() -> str | None:
    """Why the image cannot be played here (None: it can)."""
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to start the keeper with the container's capabilities"
    try:
        found = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                               text=True, timeout=30).stdout.split()
    except OSError:
        found = []
    if found != [str(n) for n in sys.version_info[:2]]:
        return f"needs {SYSTEM_PYTHON} of the venv's Python version to run the recorder as nobody"
    return None


def python_argv(command: tuple[str, ...] | list[str]) -> list[str]:
    """An image's `python …` command, run by the Python here that nobody may run."""
    assert command[0] == "python", command
    return [SYSTEM_PYTHON, *command[1:]]


def status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a mapping."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {name: value.strip() for name, _, value in (line.partition(":") for line in lines)}


def capability_names(mask: str) -> set[str]:
    """The capabilities in a /proc status mask (hex); one outside Docker's defaults by its bit."""
    bits = int(mask, 16)
    names = {name for name, bit in DOCKER_CAPABILITIES.items() if bits >> bit & 1}
    return names | {f"bit {bit}" for bit in range(64)
                    if bits >> bit & 1 and bit not in DOCKER_CAPABILITIES.values()}


def environ(pid: int) -> dict[str, str]:
    """/proc/PID/environ as a mapping."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
