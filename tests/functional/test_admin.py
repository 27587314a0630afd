"""The admin CLI takes an app's secrets without putting them on the command line."""

from __future__ import annotations

import io
import json

import pytest

from chalicelib import admin, wiring
from chalicelib.config import Settings


def test_add_app_reads_its_secrets_from_stdin_and_warns_about_argv(
        aws_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("the-secret-key\nthe-usersig-key\nthe-callback-key\n"))
    assert admin.main(["add-app", "--sdkappid", "1400000099", "--secret-id", "AKIDPIPE",
                       "--janus-url", "http://127.0.0.1:8088/janus", "--callback-url", "https://cb.example.com/x",
                       "--callback-key", "-"]) == 0
    out = capsys.readouterr()
    assert "the-secret-key" not in out.out + out.err and "warning" not in out.err
    app = wiring.app_registry().get_app(1400000099)
    assert app is not None and app.usersig_key == "the-usersig-key" and app.callback_key == "the-callback-key"
    credential = wiring.app_registry().get_credential("AKIDPIPE")
    assert credential is not None and credential.secret_key == "the-secret-key"
    assert json.loads(out.out)["SdkAppId"] == 1400000099

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert admin.main(["add-app", "--sdkappid", "1400000098", "--secret-id", "AKIDARGV", "--secret-key", "k",
                       "--usersig-key", "u", "--janus-url", "http://127.0.0.2:8088/janus"]) == 0
    assert "can be seen by other users" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nothing to read: refused, not registered with an empty key
        admin.main(["add-app", "--sdkappid", "1400000097", "--secret-id", "AKIDNONE",
                    "--janus-url", "http://127.0.0.1:8088/janus"])


def test_two_apps_share_a_janus_only_with_room_namespaces(
        aws_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Room names are the customers' choice: two apps on one Janus under the same names could
    record each other's rooms."""
    janus = ["--janus-url", "http://janus.example.com:8088/janus"]
    monkeypatch.setattr("sys.stdin", io.StringIO("k1\nu1\nk2\nu2\nk3\nu3\n"))
    assert admin.main(["add-app", "--sdkappid", "1400000091", "--secret-id", "AKID91", *janus]) == 0
    assert admin.main(["add-app", "--sdkappid", "1400000092", "--secret-id", "AKID92",
                       "--janus-url", "http://JANUS.example.com:8088/janus/"]) == 2
    assert "either app could record the other's" in capsys.readouterr().err
    assert wiring.app_registry().get_app(1400000092) is None
    assert admin.main(["add-app", "--sdkappid", "1400000093", "--secret-id", "AKID93", "--room-namespace",
                       *janus]) == 0
    app = wiring.app_registry().get_app(1400000093)
    assert app is not None and app.room.room_namespace
