"""The API's figures, from the WSGI layer: what the access log line counts."""

from __future__ import annotations

from storaged.api import app as app_mod
from storaged.metrics import Metrics
from tests.unit.api.conftest import Client
from tests.unit.api.conftest import make_conf


def test_requests_bytes_latency_and_auth_failures(tmp_path):
    conf = make_conf(tmp_path)
    probe = app_mod.make_app(conf)
    metrics = Metrics("api")
    app = app_mod.Application(probe.service, probe.authority, probe.realms,
                              probe.settings, metrics=metrics)
    try:
        client = Client(app)
        assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
        for i in range(3):
            res = client.as_user("PUT", "/v1/AUTH_test/c/o%d" % i, body=b"x" * 100)
            assert res.status == 201
        assert client.as_user("GET", "/v1/AUTH_test/c/o1").body == b"x" * 100
        assert client.as_user("GET", "/v1/AUTH_test/c/missing").status == 404
        assert client.call("GET", "/v1/AUTH_test/c/o1",
                           {"X-Auth-Token": "AUTH_tkbogus"}).status == 401
        client.as_user("BREW", "/v1/AUTH_test/c/o1")
    finally:
        app.close()
    get = metrics.registry.get_sample_value
    assert get("storaged_api_requests_total", {"method": "PUT", "status": "2xx"}) == 4
    assert get("storaged_api_requests_total", {"method": "GET", "status": "2xx"}) >= 2
    assert get("storaged_api_requests_total", {"method": "GET", "status": "4xx"}) == 2
    assert get("storaged_api_requests_total", {"method": "other", "status": "4xx"}) == 1
    assert get("storaged_api_auth_failures_total") == 1
    assert get("storaged_api_received_bytes_total", {"method": "PUT"}) == 300
    assert get("storaged_api_sent_bytes_total", {"method": "GET"}) >= 100
    assert get("storaged_api_request_duration_seconds_count", {"method": "PUT"}) == 4
    assert get("storaged_api_requests_in_progress") == 0
    # Bounded labels: no account, container or object name anywhere.
    for family in metrics.registry.collect():
        for sample in family.samples:
            names = {"AUTH_test", "test", "c", "o0", "o1", "o2", "missing"}
            assert not names & set(sample.labels.values()), sample
