"""The recorder's health check (the image's HEALTHCHECK and the task definition's healthCheck):
`python -m recorder_container.health` exits 0 while the recorder's control loop has turned in
the last STALE_S seconds, as the file it touches on every turn says (`beat`), and 1 otherwise —
a recorder whose loop hangs is unhealthy although its process lives.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from chalicelib.naming import file_safe
from recorder_container.settings import RecorderSettings, SettingsError

STALE_S = 30.0  # six heartbeats; a turn of the loop takes a poll interval


def alive_file(settings: RecorderSettings) -> Path:
    """What the task's recorder touches on every turn of its loop: beside its work dir, never in
    it (what is there is media still to be stored)."""
    return settings.service.run_dir / "alive" / file_safe(settings.task_id)


def beat(alive: Path) -> None:
    """The control loop turned (cheap: one utime once the file exists)."""
    try:
        alive.touch()
    except FileNotFoundError:
        alive.parent.mkdir(parents=True, exist_ok=True)
        alive.touch()


def check(alive: Path, now: float) -> str | None:
    """None when healthy; else what is wrong."""
    try:
        stale = now - alive.stat().st_mtime
    except FileNotFoundError:
        return "the recorder's control loop has not turned yet"
    if stale > STALE_S:
        return f"the recorder's control loop last turned {stale:.0f} s ago"
    return None


def main() -> int:
    try:
        settings = RecorderSettings.from_env()
    except SettingsError as exc:
        print(f"health: {exc}", file=sys.stderr)
        return 1
    problem = check(alive_file(settings), time.time())
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
