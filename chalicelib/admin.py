"""Admin commands: `python -m chalicelib.admin add-app|list-apps|usersig|dead-letters|failed-outputs|report(s) ...`.

They act on the deployment the environment points at (CLOUDREC_* and AWS_* variables;
the local stack's AWS emulation when CLOUDREC_AWS_ENDPOINT is set). Secrets are never
printed by list-apps.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence

from chalicelib import aws, dead_letters, failed_outputs, recording_report, wiring
from chalicelib.apps import App, RoomBackend, SharedJanusError
from chalicelib.config import ConfigError
from chalicelib.schema import events_dlq_name
from chalicelib.usersig import DEFAULT_EXPIRE_S, gen_usersig

# (flag, attribute, required) of add-app's secrets, in the order they are read from a pipe
SECRETS = (("--secret-key", "secret_key", True), ("--usersig-key", "usersig_key", True),
           ("--janus-api-secret", "janus_api_secret", False), ("--room-secret", "room_secret", False),
           ("--callback-key", "callback_key", False))
ASKING_HELP = "(stdin: one line each, in the order secret key, UserSig key, then those given as '-')"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    add = sub.add_parser("add-app", help="register or replace an SdkAppId")
    add.add_argument("--sdkappid", type=int, required=True)
    add.add_argument("--secret-id", required=True, help="API SecretId that may act for this app")
    add.add_argument("--secret-key", help=f"left out: asked for (or read from stdin) {ASKING_HELP}")
    add.add_argument("--usersig-key", help=f"the app's UserSig (TLSSigAPIv2) secret key; left out: asked for "
                                           f"{ASKING_HELP}")
    add.add_argument("--janus-url", required=True, help="Janus HTTP API, e.g. https://janus.example.com/janus")
    add.add_argument("--janus-api-secret", default="", help=f"'-': asked for {ASKING_HELP}")
    add.add_argument("--janus-token", default="")
    add.add_argument("--no-string-ids", action="store_true", help="the VideoRoom uses integer ids")
    add.add_argument("--room-pin", default="")
    add.add_argument("--room-namespace", action="store_true",
                     help="name its rooms <SdkAppId>/<RoomId> in Janus: how apps share one Janus")
    add.add_argument("--room-secret", default="", help=f"'-': asked for {ASKING_HELP}")
    add.add_argument("--ice-servers", default="[]", help='JSON, e.g. [{"urls": "turn:t.example.com", '
                                                           '"username": "u", "credential": "c"}]')
    add.add_argument("--callback-url", default="")
    add.add_argument("--callback-key", default="", help=f"'-': asked for {ASKING_HELP}")
    add.add_argument("--qps", type=int, default=20, help="requests per second per action")
    add.add_argument("--max-concurrent", type=int, default=100, help="concurrent recording tasks")

    sub.add_parser("list-apps", help="show registered apps (secrets masked)")

    sig = sub.add_parser("usersig", help="issue a UserSig for a robot UserId with an app's key")
    sig.add_argument("--user-id", required=True)
    sig.add_argument("--sdkappid", type=int, default=1400000001)
    sig.add_argument("--expire", type=int, default=DEFAULT_EXPIRE_S, help="lifetime in seconds")

    dead = sub.add_parser("dead-letters", help="list callback events the receiver never accepted")
    dead.add_argument("--redeliver", action="store_true", help="queue them for delivery again")

    failed = sub.add_parser("failed-outputs", help="list output jobs (MP4/AAC/VOD) whose function failed for good")
    failed.add_argument("--redeliver", action="store_true", help="run them again")

    report = sub.add_parser("report", help="a task's recording report: per stream, frames, losses, gaps, bitrate …")
    report.add_argument("task_id", metavar="TaskId")
    reports = sub.add_parser("reports", help="the tasks that have a recording report, the latest first")
    reports.add_argument("--limit", type=int, default=20, help="at most this many")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        aws.settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "dead-letters":
        return _dead_letters(args.redeliver)
    if args.command == "failed-outputs":
        return _failed_outputs(args.redeliver)
    if args.command == "report":
        return _report(args.task_id)
    if args.command == "reports":
        print(json.dumps(recording_report.tasks(wiring.internal_bucket(), args.limit), indent=2))
        return 0
    registry = wiring.app_registry()
    if args.command == "add-app":
        _ask_for_secrets(args)
        app = App(
            sdkappid=args.sdkappid,
            usersig_key=args.usersig_key,
            room=RoomBackend(
                janus_url=args.janus_url, api_secret=args.janus_api_secret, token=args.janus_token,
                string_ids=not args.no_string_ids, room_pin=args.room_pin, room_secret=args.room_secret,
                ice_servers=tuple(json.loads(args.ice_servers)), room_namespace=args.room_namespace,
            ),
            callback_url=args.callback_url, callback_key=args.callback_key,
            qps=args.qps, max_concurrent=args.max_concurrent,
        )
        try:
            saved = registry.put_app(app, args.secret_id, args.secret_key)
        except SharedJanusError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(json.dumps(saved.public_view(), indent=2))
    elif args.command == "list-apps":
        print(json.dumps([a.public_view() for a in registry.list_apps()], indent=2))
    else:
        found = registry.get_app(args.sdkappid)
        if found is None:
            print(f"SdkAppId {args.sdkappid} is not registered", file=sys.stderr)
            return 1
        print(gen_usersig(found.sdkappid, found.usersig_key, args.user_id, int(time.time()), args.expire))
    return 0


def _ask_for_secrets(args: argparse.Namespace) -> None:
    """Secrets on the command line are visible to every user of the machine (ps, shell
    history): the required ones left out, and the optional ones given as "-", are asked for
    (without echo at a terminal; one line each from a pipe, in the order of SECRETS)."""
    given = [flag for flag, attr, _ in SECRETS if getattr(args, attr) not in (None, "", "-")]
    if given:
        print(f"warning: {', '.join(given)} on the command line can be seen by other users of this machine; "
              "leave them out to be asked", file=sys.stderr)
    for flag, attr, required in SECRETS:
        value = getattr(args, attr)
        if value == "-" or (required and value is None):
            value = getpass.getpass(f"{flag[2:]}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
            if required and not value:
                raise SystemExit(f"{flag} is needed")
            setattr(args, attr, value)


def _dead_letters(redeliver: bool) -> int:
    sqs, settings = aws.client("sqs"), aws.settings()
    dlq_url = sqs.get_queue_url(QueueName=events_dlq_name(settings))["QueueUrl"]
    if redeliver:
        moved = dead_letters.redeliver(sqs, dlq_url, wiring.event_queue().url)
        print(json.dumps({"Redelivered": [d.public_view() for d in moved]}, indent=2))
    else:
        print(json.dumps([d.public_view() for d in dead_letters.list_dead(sqs, dlq_url)], indent=2))
    return 0


def _failed_outputs(redeliver: bool) -> int:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=aws.settings().outputs_dlq)["QueueUrl"]
    if redeliver:
        parts = failed_outputs.redeliver(sqs, url, wiring.internal_bucket())
        print(json.dumps({"Redelivered": [p.public_view() for p in parts]}, indent=2))
    else:
        print(json.dumps([p.public_view() for p in failed_outputs.list_failed(sqs, url)], indent=2))
    return 0


def _report(task_id: str) -> int:
    report = recording_report.read(wiring.internal_bucket(), task_id)
    if report is None:
        print(f"task {task_id} has no recording report", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
