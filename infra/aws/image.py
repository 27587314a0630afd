"""Build the recorder image and push it to ECR (`make image REGISTRY=<account>.dkr.ecr.<region>.amazonaws.com`).

    python -m infra.aws.image [--registry REGISTRY] [--tag TAG]

Without --registry it only builds `cloudrec-recorder:<tag>`. With one it also makes the ECR
repository if missing, logs Docker in with the account's credentials and pushes, then prints
the image to deploy with (`RecorderImage=`). Docker must be installed and its daemon running;
when it is not, this says which of the two is missing and exits 2 without doing anything.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "cloudrec-recorder"
DOCKERFILE = ROOT / "recorder_container" / "Dockerfile"


def docker_missing() -> str | None:
    """Why Docker cannot build here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=30, check=False)
    if probe.returncode != 0 or not probe.stdout.strip():
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"the Docker daemon does not answer ({reason})"
    return None


def _version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "dev"


def _push(image: str, registry: str) -> None:
    import boto3

    region = registry.split(".")[3] if ".ecr." in registry else None
    ecr = boto3.client("ecr", region_name=region)
    try:
        ecr.create_repository(repositoryName=REPOSITORY, imageScanningConfiguration={"scanOnPush": True})
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    subprocess.run(["docker", "login", "--username", user, "--password-stdin", registry], input=password,
                   text=True, check=True, capture_output=True)
    subprocess.run(["docker", "push", image], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.aws.image", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="", help="e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    parser.add_argument("--tag", default=_version())
    args = parser.parse_args(argv)
    missing = docker_missing()
    if missing:
        print(f"make image: cannot build the recorder image here: {missing}.\n"
              f"Build it where Docker runs, from the repository root:\n"
              f"  docker build -f recorder_container/Dockerfile -t {REPOSITORY}:{args.tag} .", file=sys.stderr)
        return 2
    image = f"{args.registry}/{REPOSITORY}:{args.tag}" if args.registry else f"{REPOSITORY}:{args.tag}"
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", image, str(ROOT)], check=True)
    if args.registry:
        _push(image, args.registry)
    print(f"RecorderImage={image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
