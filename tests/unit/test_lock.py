"""The locks (`make lock`) agree with the requirements files they were made from: every pin of a
requirements file (and of the files it includes with -r) is in its lock at the same version, every
entry of a lock is pinned with at least one hash, and the locks of what ships (the recorder image,
the Lambda layers) pin what the dev lock pins, so what ships is what the tests ran."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.aws import layers

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = "requirements.lock"
# lock -> the requirements file it is made from (Makefile: lock)
LOCKS = {
    DEV_LOCK: "requirements-dev.txt",
    "recorder_container/requirements.lock": "recorder_container/requirements.txt",
    "requirements-functions.lock": "requirements-functions.txt",
    "requirements-media.lock": "requirements-media.txt",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#\\]+)")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: str) -> dict[str, str]:
    """name -> version of every requirement in the file and the files it includes (-r)."""
    path = ROOT / requirements
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            included = (path.parent / line.split(None, 1)[1]).relative_to(ROOT)
            found.update(pins(str(included)))
            continue
        match = PIN.match(line)
        assert match, f"{requirements}: {raw!r} is not pinned with =="
        found[canonical(match[1])] = match[3]
    return found


def lock_entries(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every entry of a lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for raw in (ROOT / lock).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw[0].isspace():
            match = PIN.match(line)
            assert match, f"{lock}: {raw!r} is not pinned with =="
            name = canonical(match[1])
            assert name not in entries, f"{lock}: {name} twice"
            entries[name] = (match[3], [])
        elif line.startswith("--hash"):
            assert name, f"{lock}: a hash before any entry"
            entries[name][1].append(line.rstrip(" \\"))
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_in_the_lock_at_its_version(lock: str) -> None:
    entries = lock_entries(lock)
    stale = {name: (version, entries.get(name, ("missing",))[0])
             for name, version in pins(LOCKS[lock]).items() if entries.get(name, ("",))[0] != version}
    assert not stale, f"{lock} is stale (pinned, locked): {stale}; run `make lock`"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_lock_entry_has_hashes(lock: str) -> None:
    entries = lock_entries(lock)
    assert entries
    for name, (_, hashes) in entries.items():
        assert hashes, f"{lock}: {name} has no --hash"
        assert all(HASH.match(h) for h in hashes), f"{lock}: {name}: {hashes}"


@pytest.mark.parametrize("lock", [lock for lock in LOCKS if lock != DEV_LOCK])
def test_what_ships_is_what_the_tests_ran(lock: str) -> None:
    dev = lock_entries(DEV_LOCK)
    differ = {name: (version, dev[name][0]) for name, (version, _) in lock_entries(lock).items()
              if name in dev and dev[name][0] != version}
    assert not differ, f"{lock} and {DEV_LOCK} pin different versions: {differ}; run `make lock`"


def test_the_installs_take_the_locks_with_hashes() -> None:
    assert "--require-hashes -r requirements.lock" in (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "recorder_container/Dockerfile").read_text()
    assert "--require-hashes -r recorder_container/requirements.lock" in dockerfile
    assert {layers.lock_of(requirements): requirements for _, requirements in layers.LAYERS.values()}.items() \
        <= LOCKS.items()
