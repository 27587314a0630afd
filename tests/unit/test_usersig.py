"""UserSig verification, against signatures from Tencent's own TLSSigAPIv2 package."""

from __future__ import annotations

import time

import pytest
import TLSSigAPIv2

from chalicelib.errors import UserSigError
from chalicelib.usersig import gen_usersig, verify_usersig

APP, KEY = 1400000001, "usersig-key"


def test_official_package_signature_verifies() -> None:
    sig = TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("recorder_1", 3600)
    expires = verify_usersig(sig, APP, KEY, "recorder_1", time.time())
    assert time.time() + 3500 < expires <= time.time() + 3600


def test_our_signature_matches_official_format() -> None:
    now = int(time.time())
    ours = gen_usersig(APP, KEY, "rec", now, 600)
    assert ours.startswith("eJ")
    verify_usersig(ours, APP, KEY, "rec", now + 1)


@pytest.mark.parametrize("case,message", [
    ("wrong_user", "another UserId"),
    ("wrong_app", "another SdkAppId"),
    ("wrong_key", "not signed with this application's key"),
    ("expired", "expired"),
    ("garbage", "malformed"),
    ("not_json", "malformed"),
])
def test_rejections(case: str, message: str) -> None:
    now = int(time.time())
    sig = {
        "wrong_user": lambda: TLSSigAPIv2.TLSSigAPIv2(APP, KEY).gen_sig("someone_else"),
        "wrong_app": lambda: TLSSigAPIv2.TLSSigAPIv2(APP + 1, KEY).gen_sig("rec"),
        "wrong_key": lambda: TLSSigAPIv2.TLSSigAPIv2(APP, "other").gen_sig("rec"),
        "expired": lambda: gen_usersig(APP, KEY, "rec", now - 100, 50),
        "garbage": lambda: "not-a-usersig!",
        "not_json": lambda: "eJzLSM3JyQcABiwCFQ__",
    }[case]()
    with pytest.raises(UserSigError) as exc:
        verify_usersig(sig, APP, KEY, "rec", now)
    assert exc.value.code == "InvalidParameter.UserSig"
    assert message in exc.value.message


def test_a_usersig_that_inflates_past_the_cap_is_refused_without_inflating_it() -> None:
    import base64
    import zlib

    from chalicelib.errors import UserSigError
    from chalicelib.usersig import MAX_INFLATED, MAX_USERSIG, verify_usersig

    # ~3 KB of UserSig (under the length cap) that would inflate to 3 MB
    bomb = base64.b64encode(zlib.compress(b"{" + b" " * 3_000_000, 9)).decode().translate(
        str.maketrans("+/=", "*-_"))
    assert len(bomb) <= MAX_USERSIG
    with pytest.raises(UserSigError, match=f"more than {MAX_INFLATED} bytes"):
        verify_usersig(bomb, 1, "k", "u", 0)
    with pytest.raises(UserSigError, match="longer than"):
        verify_usersig("eJ" + "A" * MAX_USERSIG, 1, "k", "u", 0)
