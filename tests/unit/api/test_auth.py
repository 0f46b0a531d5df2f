"""Users from [api] and signed tokens."""

from __future__ import annotations

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.api import auth
from storaged.common import config
from storaged.conf import api as api_conf


def test_parse_user():
    user = auth.parse_user("user_test_tester", "testing .admin")
    assert (user.account, user.name, user.key) == ("test", "tester", "testing")
    assert user.groups == {".admin"}
    assert user.login == "test:tester"
    assert user.account_name == "AUTH_test"
    assert "testing" not in repr(user)
    user = auth.parse_user("user_ops_back_up", "k .reseller_admin https://x/v1/AUTH_ops")
    assert (user.account, user.name) == ("ops", "back_up")
    assert user.storage_url == "https://x/v1/AUTH_ops"


@pytest.mark.parametrize("option, value", [
    ("user_test", "k"),
    ("user__bob", "k"),
    ("user_test_", "k"),
    ("user_test_bob", ""),
    ("user_test_bob", "k .superuser"),
])
def test_parse_user_refuses(option, value):
    with pytest.raises(ValueError) as info:
        auth.parse_user(option, value)
    assert "k" not in str(info.value).split()


def make_conf(tmp_path, api_lines):
    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n[api]\n%s\n" % (
        tmp_path, "\n".join(api_lines)))
    argv = ["--config-file", str(path)]
    return config.prepare_service(
        argv, prog="t", setup_logging=False, conf=cfg.ConfigOpts(),
        register=lambda c: api_conf.register_dynamic_opts(c, [str(path)]),
        validators=[api_conf.check_users],
    )


def test_users_from_conf_are_secret_options(tmp_path):
    conf = make_conf(tmp_path, [
        "user_test_tester = testing .admin",
        "user_test_reader = r3ader",
        "bind_port = 9999",
    ])
    users = auth.users_from_conf(conf)
    assert sorted(users) == ["test:reader", "test:tester"]
    assert users["test:reader"].groups == frozenset()
    shown = config.effective_config(conf)["api"]
    assert shown["user_test_tester"] == "***"
    assert shown["bind_port"] == 9999
    # Registering again after parsing (the lead's hook) is harmless.
    api_conf.register_dynamic_opts(conf)


def test_bad_user_entry_is_a_config_error_without_the_key(tmp_path):
    with pytest.raises(exception.ConfigError) as info:
        make_conf(tmp_path, ["user_test_tester = hunter2 .root"])
    text = str(info.value)
    assert "[api] user_test_tester" in text and "unknown group" in text
    assert "hunter2" not in text


def test_unknown_api_option_still_refused(tmp_path):
    with pytest.raises(exception.ConfigError) as info:
        make_conf(tmp_path, ["bind_prot = 1"])
    assert "unknown option" in str(info.value)


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def authority(clock):
    users = {
        "test:tester": auth.parse_user("user_test_tester", "testing .admin"),
        "test:reader": auth.parse_user("user_test_reader", "r3ader"),
        "ops:root": auth.parse_user("user_ops_root", "rootkey .reseller_admin"),
    }
    return auth.TokenAuthority(users, "server-secret", ttl=3600, clock=clock)


def test_authenticate(authority):
    assert authority.authenticate("test:tester", "testing").name == "tester"
    assert authority.authenticate("test:tester", b"testing").name == "tester"
    assert authority.authenticate("test:tester", "testinG") is None
    assert authority.authenticate("test:nobody", "testing") is None
    assert authority.authenticate("test:tester", "") is None


def test_token_round_trip_and_identity(authority, clock):
    user = authority.users["test:tester"]
    token, expires = authority.issue(user)
    assert token.startswith("AUTH_tk")
    assert expires == clock.now + 3600
    ident = authority.validate(token)
    assert ident == auth.Identity("test:tester", "AUTH_test", frozenset({".admin"}))
    assert ident.owns("AUTH_test") and not ident.owns("AUTH_other")
    assert ident.acl_groups == {"test:tester", "test", "AUTH_test"}
    assert authority.expires_in(token) == 3600
    # Two tokens of one user differ (random part).
    assert authority.issue(user)[0] != token


def test_roles(authority):
    reader = authority.validate(authority.issue(authority.users["test:reader"])[0])
    assert not reader.owns("AUTH_test")
    assert reader.acl_groups == {"test:reader", "test"}  # no AUTH_test: no admin
    root = authority.validate(authority.issue(authority.users["ops:root"])[0])
    assert root.owns("AUTH_anyone") and ".reseller_admin" in root.acl_groups
    sync = auth.Identity("", "AUTH_test", sync_container="c")
    assert sync.is_sync and not sync.owns("AUTH_test") and not sync.is_anonymous
    assert not sync.acl_groups
    signed = auth.Identity("", "AUTH_test", via="tempurl")
    assert not signed.owns("AUTH_test") and not signed.is_anonymous
    assert auth.Identity("", "").is_anonymous
    admin_by_acl = auth.Identity("test:reader", "AUTH_test", acl_owner="AUTH_x")
    assert admin_by_acl.owns("AUTH_x") and not admin_by_acl.owns("AUTH_test")


def test_token_expires(authority, clock):
    token, _ = authority.issue(authority.users["test:tester"])
    clock.now += 3599
    assert authority.validate(token) is not None
    clock.now += 1
    assert authority.validate(token) is None


def test_forged_or_damaged_tokens(authority):
    token, _ = authority.issue(authority.users["test:reader"])
    body, sig = token.rsplit(".", 1)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert authority.validate(body + "." + flipped) is None
    assert authority.validate(token + "0") is None
    assert authority.validate(body) is None
    assert authority.validate("AUTH_tk") is None
    assert authority.validate("AUTH_tk!!!.00") is None
    assert authority.validate("nonsense") is None
    assert authority.validate("AUTH_tk" + "A" * 5000) is None
    # The payload rewritten to another user does not carry over the MAC.
    import base64
    payload = base64.urlsafe_b64decode(body[7:] + "==").decode()
    forged = payload.replace("test:reader", "test:tester").encode()
    forged_body = "AUTH_tk" + base64.urlsafe_b64encode(forged).decode().rstrip("=")
    assert authority.validate(forged_body + "." + sig) is None


def test_other_secret_or_changed_key_invalidates(authority, clock):
    token, _ = authority.issue(authority.users["test:tester"])
    other = auth.TokenAuthority(authority.users, "another-secret", clock=clock)
    assert other.validate(token) is None
    same = auth.TokenAuthority(authority.users, "server-secret", clock=clock)
    assert same.validate(token) is not None         # another worker or server
    rotated = dict(authority.users)
    rotated["test:tester"] = auth.parse_user("user_test_tester", "new-key .admin")
    assert auth.TokenAuthority(rotated, "server-secret", clock=clock).validate(
        token) is None
    removed = {k: v for k, v in authority.users.items() if k != "test:tester"}
    assert auth.TokenAuthority(removed, "server-secret", clock=clock).validate(
        token) is None


def test_random_secret_when_none_given(authority):
    a = auth.TokenAuthority(authority.users)
    b = auth.TokenAuthority(authority.users)
    token, _ = a.issue(authority.users["test:tester"])
    assert a.validate(token) is not None
    assert b.validate(token) is None


def test_names_with_hyphens_and_case_kept(tmp_path):
    conf = make_conf(tmp_path, [
        "user_my-team_bob = k1 .admin",
        "user_Upper_Case = k2",
    ])
    users = auth.users_from_conf(conf)
    assert sorted(users) == ["Upper:Case", "my-team:bob"]
    assert users["my-team:bob"].account_name == "AUTH_my-team"
