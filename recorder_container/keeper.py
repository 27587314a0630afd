"""The recorder's keeper: the first process of a recorder (`python -m recorder_container.keeper`,
the container's entry point in AWS, the launched process locally).

The keeper holds the launch's own AWS credentials, which may assume the scoped recorder role
for any task. It assumes that role for its one task with the task's session policy
(`chalicelib/recorder_access.py`) and runs the recorder with those credentials only: a file
the recorder's AWS SDK reads through `credential_process` and re-reads before they expire,
while the keeper renews them. The recorder gets no other AWS credentials (no keys, no
container-credentials address) and the local sealing key only as its task's derived key. In
the image it also runs as another user (CLOUDREC_RECORDER_USER), so it cannot read the keeper's
environment; locally it runs as the stack's user. Signals go on to the recorder; the keeper
ends as the recorder did, and the recorder dies with the keeper.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib import aws, config, recorder_access
from chalicelib.launcher import die_with_parent, recorder_env
from chalicelib.observability import get_logger
from chalicelib.sealing import LocalSealer
from recorder_container.settings import RecorderSettings, SettingsError

log = get_logger("cloudrec-keeper")
RENEW_BEFORE_S = 1800.0  # renewed with half an hour left; the SDK re-reads the file with 15 minutes left
RETRY_S = 60.0
USER_ENV = config.CLOUDREC_RECORDER_USER.name  # the uid the recorder runs as, when the keeper may switch (root)
# what the recorder must not inherit: every other way to AWS credentials
OTHER_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                      "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                      recorder_access.ROLE_ENV, USER_ENV)


class Keeper:
    """The credentials of one recorder: assumed, written where the recorder reads them, renewed."""

    def __init__(self, settings: RecorderSettings, sdkappid: int, directory: Path) -> None:
        self._settings = settings
        self._scope = recorder_access.TaskScope(settings.task_id, sdkappid)
        self._sts = aws.make_client("sts", settings.service)
        self.credentials = directory / "credentials.json"
        self.config = directory / "config"
        self.expires = 0.0

    def renew(self) -> None:
        s = self._settings.service
        creds = recorder_access.assume(self._sts, s.recorder_role_arn, self._scope, s)
        expiration = creds["Expiration"]
        _write(self.credentials, json.dumps({
            "Version": 1, "AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "SessionToken": creds["SessionToken"], "Expiration": expiration.isoformat()}))
        self.expires = expiration.timestamp()

    def recorder_environment(self, parent: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in recorder_env(parent).items() if k not in OTHER_CREDENTIALS}
        _write(self.config, "[default]\ncredential_process = cat " + shlex.quote(str(self.credentials)) + "\n")
        env.update(AWS_CONFIG_FILE=str(self.config), AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                   AWS_EC2_METADATA_DISABLED="true")
        s = self._settings.service
        if s.seal_key:  # the stack's key opens every task's keys; the recorder gets its task's only
            sealer = LocalSealer(base64.b64decode(s.seal_key), s.seal_key_task).for_task(self._settings.task_id)
            env[config.CLOUDREC_SEAL_KEY.name] = sealer.key()
            env[config.CLOUDREC_SEAL_KEY_TASK.name] = self._settings.task_id
        return env

    def due_in(self) -> float:
        return max(0.0, self.expires - RENEW_BEFORE_S - time.time())


def _write(path: Path, text: str) -> None:
    """Replace `path` at once (the recorder may read it at any moment)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    tmp.chmod(0o644)  # for the recorder too, whatever the umask: the directory keeps others out
    os.replace(tmp, path)


def _app_of(settings: RecorderSettings) -> int | None:
    s = settings.service
    item = aws.make_client("dynamodb", s).get_item(
        TableName=s.tasks_table, Key={"task_id": {"S": settings.task_id}}, ProjectionExpression="sdkappid",
        ConsistentRead=True).get("Item")
    return int(item["sdkappid"]["N"]) if item else None


def _start(env: dict[str, str], uid: int | None) -> subprocess.Popen[bytes]:
    extra: dict[str, Any] = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    return subprocess.Popen([sys.executable, "-m", "recorder_container"], env=env, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent, **extra)  # noqa: PLW1509 (one thread here)


def hand_over(directory: Path, settings: RecorderSettings, uid: int) -> None:
    """The recorder (another user, its group its uid) gets its work dir and may read its
    credentials. These stay the keeper's, to renew and remove: root here has no CAP_DAC_OVERRIDE,
    so a directory it gave away would be closed to it (handing over the files in it failed, and
    renewing and removing them would have)."""
    work = settings.service.run_dir
    work.mkdir(parents=True, exist_ok=True)
    os.chown(work, uid, uid)
    os.chown(directory, -1, uid)
    directory.chmod(0o750)  # the keeper writes, the recorder's group reads, nobody else enters


def keep(settings: RecorderSettings) -> int:
    s = settings.service
    if not s.recorder_role_arn:
        log.error(f"{recorder_access.ROLE_ENV} is not set: a recorder runs only with its own task's credentials")
        return 2
    sdkappid = _app_of(settings)
    if sdkappid is None:
        log.error("no such task")
        return 2
    uid = settings.recorder_user
    with tempfile.TemporaryDirectory(prefix="cloudrec-credentials-") as name:
        keeper = Keeper(settings, sdkappid, Path(name))
        keeper.renew()
        env = keeper.recorder_environment(dict(os.environ))
        if uid is not None:
            hand_over(Path(name), settings, uid)
        child = _start(env, uid)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
        while True:
            try:
                code = child.wait(timeout=keeper.due_in())
                break
            except subprocess.TimeoutExpired:
                try:
                    keeper.renew()
                except Exception:  # STS unreachable for now: the recorder's credentials still last a while
                    log.exception("the recorder's credentials could not be renewed; retrying")
                    keeper.expires = time.time() + RENEW_BEFORE_S + RETRY_S
    if code < 0:  # ended by a signal: so does the keeper, and whoever watches it sees the same
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def main() -> int:
    try:
        settings = RecorderSettings.from_env()
    except SettingsError as exc:
        print(f"keeper: {exc}", file=sys.stderr)
        return 2
    log.append_keys(task_id=settings.task_id)
    try:
        return keep(settings)
    except Exception:
        log.exception("the recorder's keeper failed")
        return 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
