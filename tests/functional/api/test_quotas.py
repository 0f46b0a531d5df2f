"""Quotas through python-swiftclient against a real storaged-api."""

from __future__ import annotations

import pytest

from tests.functional.api.apiserver import ApiServer

swiftclient = pytest.importorskip("swiftclient")
from swiftclient import client as swift  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"))
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def test_container_quotas_and_account_quota_setting(server):
    conn = server.connection()
    assert "container_quotas" in conn.get_capabilities()
    conn.put_container("q", headers={"X-Container-Meta-Quota-Bytes": "10",
                                     "X-Container-Meta-Quota-Count": "2"})
    with pytest.raises(swift.ClientException) as info:
        conn.post_container("q", {"X-Container-Meta-Quota-Count": "many"})
    assert info.value.http_status == 400
    assert info.value.http_response_content == b"Invalid count quota."

    conn.put_object("q", "a", b"123456")
    with pytest.raises(swift.ClientException) as info:
        conn.put_object("q", "b", b"x" * 5)
    assert info.value.http_status == 413
    assert info.value.http_response_content == b"Upload exceeds quota."
    with pytest.raises(swift.ClientException) as info:
        conn.put_object("q", "big", b"x" * 32 * 1024)
    assert info.value.http_status == 413
    conn.put_object("q", "b", b"1234")
    with pytest.raises(swift.ClientException) as info:
        conn.put_object("q", "c", b"")  # the count quota
    assert info.value.http_status == 413
    assert [o["name"] for o in conn.get_container("q")[1]] == ["a", "b"]

    # Only a reseller admin sets an account quota.
    with pytest.raises(swift.ClientException) as info:
        conn.post_account({"X-Account-Meta-Quota-Bytes": "100"})
    assert info.value.http_status == 403
    assert "x-account-meta-quota-bytes" not in conn.head_account()
