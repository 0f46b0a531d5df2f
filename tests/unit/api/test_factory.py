"""The paste.deploy factory builds a working application in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

SCRIPT = textwrap.dedent("""
    import io, sys
    from storaged.api.app import app_factory

    app = app_factory({"__file__": "paste.ini"}, config_file=sys.argv[1])
    captured = {}

    def call(method, path, headers=()):
        env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "h", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(b""), "HTTP_HOST": "h"}
        env.update(headers)
        body = b"".join(app(env, lambda s, h, e=None: captured.update(s=s, h=h)))
        return captured["s"], dict(captured["h"]), body

    status, headers, _ = call("GET", "/auth/v1.0", {
        "HTTP_X_AUTH_USER": "test:tester", "HTTP_X_AUTH_KEY": "testing"})
    token = headers["X-Auth-Token"]
    print(status, headers["X-Storage-Url"])
    print(call("PUT", "/v1/AUTH_test/c", {"HTTP_X_AUTH_TOKEN": token})[0])
    print(call("GET", "/v1/AUTH_test", {"HTTP_X_AUTH_TOKEN": token})[2])
""")


def test_app_factory(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\nlog_file = %s\n[api]\n"
                    "user_test_tester = testing .admin\nrealms_file = %s\n"
                    % (tmp_path / "state", tmp_path / "log", tmp_path / "none"))
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="threading")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(conf)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "200 OK http://h/v1/AUTH_test", "201 Created", "b'c\\n'"]


def test_app_factory_refuses_a_bad_configuration(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n[api]\nuser_test_x = k .bogus\n"
                    % (tmp_path / "state"))
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="threading")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(conf)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "[api] user_test_x" in out.stderr
