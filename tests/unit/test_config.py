"""Configuration: every CLOUDREC_* variable is declared once, a bad value is refused with the
variable's name and what was expected, and the README's table is made from the declarations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from chalicelib import config
from chalicelib.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CLOUDREC_API_PORT", "abc", "CLOUDREC_API_PORT: expected a port number (1-65535), got 'abc'"),
    ("CLOUDREC_API_PORT", "0", "CLOUDREC_API_PORT: expected a port number (1-65535), got '0'"),
    ("CLOUDREC_JANUS_WS_PORT", "65536", "CLOUDREC_JANUS_WS_PORT: expected a port number (1-65535), got '65536'"),
    ("CLOUDREC_JANUS_RTP_PORTS", "20999-20000",
     "CLOUDREC_JANUS_RTP_PORTS: expected a port range LOW-HIGH (1-65535), got '20999-20000'"),
    ("CLOUDREC_HEARTBEAT_S", "-1", "CLOUDREC_HEARTBEAT_S: expected a number of seconds greater than 0, got '-1'"),
    ("CLOUDREC_SEGMENT_S", "nan", "CLOUDREC_SEGMENT_S: expected a number of seconds greater than 0, got 'nan'"),
    ("CLOUDREC_MAX_HA", "2.5", "CLOUDREC_MAX_HA: expected a whole number (0 or more), got '2.5'"),
    ("CLOUDREC_LAUNCHER", "fargate", "CLOUDREC_LAUNCHER: expected one of local, ecs, got 'fargate'"),
    ("CLOUDREC_ECS_PUBLIC_IP", "enabled", "CLOUDREC_ECS_PUBLIC_IP: expected one of ENABLED, DISABLED, got 'enabled'"),
    ("CLOUDREC_ALLOW_PRIVATE_URLS", "sometimes", "CLOUDREC_ALLOW_PRIVATE_URLS: expected 1 or 0, got 'sometimes'"),
    ("CLOUDREC_VOD_ENDPOINT", "vod.example.com",
     "CLOUDREC_VOD_ENDPOINT: expected an http:// or https:// URL, got 'vod.example.com'"),
    ("CLOUDREC_AWS_ENDPOINT", "http://127.0.0.1:port",
     "CLOUDREC_AWS_ENDPOINT: expected an http:// or https:// URL, got 'http://127.0.0.1:port'"),
    ("CLOUDREC_JANUS_IP", "localhost", "CLOUDREC_JANUS_IP: expected an IP address, got 'localhost'"),
    ("CLOUDREC_MIX_PRESET", "quick", "CLOUDREC_MIX_PRESET: expected one of ultrafast, superfast, veryfast, faster, "
     "fast, medium, slow, slower, veryslow, placebo, got 'quick'"),
])
def test_a_bad_value_names_the_variable_and_what_was_expected(name: str, value: str, message: str) -> None:
    var = getattr(config, name)
    with pytest.raises(ConfigError) as err:
        var.get({name: value})
    assert str(err.value) == message


def test_a_bad_ice_server_list_says_what_one_looks_like() -> None:
    with pytest.raises(ConfigError, match=re.escape('CLOUDREC_ICE_SERVERS: expected a JSON list of ICE servers, '
                                                    'e.g. [{"urls": "stun:stun.example.com"}], got ')):
        config.CLOUDREC_ICE_SERVERS.get({"CLOUDREC_ICE_SERVERS": '{"urls": "stun:stun.example.com"}'})


def test_settings_refuse_a_bad_value_by_its_name() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"CLOUDREC_LEASE_S": "twenty"})
    assert str(err.value) == "CLOUDREC_LEASE_S: expected a number of seconds greater than 0, got 'twenty'"


def test_a_secrets_error_does_not_repeat_it() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"CLOUDREC_SEAL_KEY": "hunter2hunter2"})
    assert str(err.value) == ("CLOUDREC_SEAL_KEY: expected 32 bytes in base64, "
                              "got a value of 14 characters (a secret: not shown)")


def test_settings_read_what_is_set_and_default_the_rest() -> None:
    s = Settings.from_env({"CLOUDREC_LAUNCHER": "ecs", "CLOUDREC_ECS_PUBLIC_IP": "DISABLED",
                           "CLOUDREC_ALLOW_PRIVATE_URLS": "true", "CLOUDREC_ECS_SUBNETS": "subnet-1, subnet-2",
                           "CLOUDREC_AWS_ENDPOINT": "http://127.0.0.1:5000", "CLOUDREC_HEARTBEAT_S": "",
                           "CLOUDREC_REGIONS": "ap-guangzhou"})
    assert (s.launcher, s.ecs_public_ip, s.allow_private_urls) == ("ecs", False, True)
    assert s.ecs_subnets == ("subnet-1", "subnet-2") and s.regions == ("ap-guangzhou",)
    assert s.aws_endpoint == s.storage_endpoint == "http://127.0.0.1:5000"  # storage goes where AWS goes
    assert s.heartbeat_s == 5.0  # empty counts as unset
    assert s.launch_grace_s == 180.0  # a Fargate task takes longer to start than a process
    assert Settings.from_env({"CLOUDREC_LAUNCHER": "ecs", "CLOUDREC_LAUNCH_GRACE_S": "60"}).launch_grace_s == 60.0
    plain = Settings.from_env({})
    assert (plain.aws_endpoint, plain.launch_grace_s, plain.ecs_public_ip, plain.allow_private_urls) == (
        None, 30.0, True, False)
    assert plain.regions == config.TRTC_REGIONS and plain.mp4_split_bytes == 2 * 1024 ** 3


def test_every_declared_default_is_a_value_of_its_kind() -> None:
    for var in config.VARIABLES:
        var.get({})  # raises ConfigError for a default that is not


def test_each_variable_is_declared_once_under_its_own_name() -> None:
    names = [var.name for var in config.VARIABLES]
    assert len(names) == len(set(names))
    for var in config.VARIABLES:
        assert var.name.startswith("CLOUDREC_") and getattr(config, var.name) is var
        assert var.readers and set(var.readers) <= {config.API, config.RECORDER, config.STACK, config.TESTS}
        assert var.doc


def test_check_names_every_bad_value_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        config.check({"CLOUDREC_API_PORT": "abc", "CLOUDREC_QPS": "0", "CLOUDREC_SEGMENT_S": "6"})
    assert str(err.value) == ("CLOUDREC_API_PORT: expected a port number (1-65535), got 'abc'; "
                              "CLOUDREC_QPS: expected a whole number (1 or more), got '0'")


def test_a_misspelt_variable_is_found() -> None:
    misspelt = "CLOUDREC_API_PORT".replace("PORT", "PROT")  # spelt out, it would be a name the scan below finds
    env = {misspelt: "9000", "CLOUDREC_API_PORT": "9000", "PATH": "/bin"}
    assert config.unknown(env) == [misspelt]


def _repository_files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", ".run", ".hypothesis", ".mypy_cache", ".ruff_cache", "build"}
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        found += [Path(folder, f) for f in files if f.endswith((".py", ".json", ".md", "Dockerfile", "Makefile"))]
    return found


def test_every_variable_named_anywhere_is_declared() -> None:
    """Code, tests, deployment files and the README name only declared variables."""
    declared = {var.name for var in config.VARIABLES}
    named: dict[str, set[Path]] = {}
    for path in _repository_files():
        for name in re.findall(r"\bCLOUDREC_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
            named.setdefault(name, set()).add(path.relative_to(ROOT))
    assert {name: where for name, where in named.items() if name not in declared} == {}
    # the scan reads the deployment's files too: the image's and Chalice's
    assert Path("recorder_container/Dockerfile") in named["CLOUDREC_RECORDER_USER"]
    assert Path(".chalice/config.json") in named["CLOUDREC_LAUNCHER"]


def test_nothing_reads_a_variable_around_its_declaration() -> None:
    """Outside chalicelib/config.py, none of cloudrec's parts reads a CLOUDREC_* variable by its name."""
    reads = re.compile(r"""(environ|env|\be)(\.get\(|\[)\s*["']CLOUDREC_""")
    parts = {"app.py", "chalicelib", "recorder_container", "infra", "tools"}
    offenders = [str(path.relative_to(ROOT)) for path in _repository_files()
                 if path.suffix == ".py" and path.relative_to(ROOT).parts[0] in parts
                 and path != ROOT / "chalicelib" / "config.py" and reads.search(path.read_text())]
    assert offenders == []


def test_readme_configuration_table_is_current() -> None:
    readme = config.README.read_text()
    assert config.TABLE_BEGIN in readme and config.TABLE_END in readme
    assert readme == config.with_table(readme), "run: python -m chalicelib.config --readme"


def test_the_readme_table_has_a_row_per_variable_with_its_default_and_readers() -> None:
    rows = config.markdown_table().splitlines()[2:]
    assert len(rows) == len(config.VARIABLES)
    assert "| `CLOUDREC_API_PORT` | `8000` | local stack | a port number (1-65535) | the API's port |" in rows
    assert any(row.startswith("| `CLOUDREC_SEGMENT_S` | `12` | recorder |") for row in rows)
    assert str(ROOT) not in config.markdown_table()  # no default of this checkout's own


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no .* block"):
        config.with_table("# cloudrec\n")
