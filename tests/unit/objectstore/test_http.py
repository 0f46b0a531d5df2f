"""The ``http`` driver against a real local HTTP(S) server."""

from __future__ import annotations

import os
import socket

import pytest

from storaged import exception
from storaged.objectstore import InvalidRange
from tests.unit.objectstore.conftest import write_file

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture(autouse=True)
def _content(http_root):
    write_file(http_root, "obj", DATA)


def _read(store, location, **kwargs):
    chunks, n = store.get(location, **kwargs)
    data = b"".join(chunks)
    assert len(data) == n
    return data


def test_range_requests_are_sent(http_store_factory, http_server):
    store = http_store_factory()
    del http_server.requests[:]
    assert _read(store, http_server.url + "/files/obj", offset=100, length=50) == (
        DATA[100:150]
    )
    assert _read(store, http_server.url + "/files/obj", offset=10_000) == DATA[10_000:]
    (m1, _, h1), (m2, _, h2) = http_server.requests
    assert (m1, h1["Range"]) == ("GET", "bytes=100-149")
    assert (m2, h2["Range"]) == ("GET", "bytes=10000-")
    assert h1["Accept-Encoding"] == "identity"


def test_server_that_ignores_range(http_store_factory, http_server):
    store = http_store_factory(chunk_size=4096)
    location = http_server.url + "/norange/obj"
    assert _read(store, location, offset=5000, length=3000) == DATA[5000:8000]
    assert _read(store, location, offset=9000) == DATA[9000:]
    with pytest.raises(InvalidRange):
        store.get(location, offset=len(DATA) + 1)


def test_size_without_head(http_store_factory, http_server):
    store = http_store_factory()
    assert store.get_size(http_server.url + "/nohead/obj") == len(DATA)
    assert store.get_size(http_server.url + "/files/obj") == len(DATA)


def test_redirects_are_followed_up_to_the_limit(http_store_factory, http_server):
    store = http_store_factory(max_redirects=3)
    assert _read(store, http_server.url + "/redirect/3/obj") == DATA
    with pytest.raises(exception.BackendUnavailable) as info:
        store.get(http_server.url + "/redirect/4/obj")
    assert "more than 3 redirects" in str(info.value)
    with pytest.raises(exception.BackendUnavailable):
        store.get_size(http_server.url + "/loop")
    none = http_store_factory(max_redirects=0)
    with pytest.raises(exception.BackendUnavailable):
        none.get(http_server.url + "/redirect/1/obj")


def test_errors(http_store_factory, http_server):
    store = http_store_factory()
    with pytest.raises(exception.ObjectNotFound):
        store.get(http_server.url + "/files/missing")
    with pytest.raises(exception.BackendUnavailable) as info:
        store.get(http_server.url + "/error")
    assert "HTTP 500" in str(info.value)
    assert isinstance(info.value, exception.RetryableError)


def test_connection_refused(http_store_factory):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = http_store_factory(connect_timeout=2)
    with pytest.raises(exception.BackendUnavailable):
        store.get(f"http://127.0.0.1:{port}/files/obj")


def test_read_timeout(http_store_factory, http_server):
    store = http_store_factory(read_timeout=0.3)
    chunks, n = store.get(http_server.url + "/slow/obj")
    assert n == len(DATA)
    with pytest.raises(exception.BackendUnavailable) as info:
        b"".join(chunks)
    assert "timed out" in str(info.value)


def test_body_shorter_than_announced(http_store_factory, http_server):
    store = http_store_factory()
    chunks, _ = store.get(http_server.url + "/short/obj")
    with pytest.raises(exception.BackendUnavailable) as info:
        b"".join(chunks)
    assert f"ended after {len(DATA) // 2} of {len(DATA)} bytes" in str(info.value)


def test_credentials_are_sent_and_never_shown(http_store_factory, http_server):
    store = http_store_factory()
    host = http_server.url.split("//", 1)[1]
    assert _read(store, f"http://user:secret@{host}/auth/obj") == DATA
    with pytest.raises(exception.StoreError) as info:
        store.get(f"http://user:secret@{host}/auth/missing")
    with pytest.raises(exception.StoreError) as info:
        store.get(f"http://user:wrong-secret@{host}/auth/obj")
    assert "HTTP 401" in str(info.value)
    assert "secret" not in str(info.value)
    assert "user:***@" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x y",
        "http://127.0.0.1/x\r\nHost: evil",
        "http://127.0.0.1/\x7f",
        "http:///no-host",
        "http://127.0.0.1:99999/x",
        "http://127.0.0.1:port/x",
        "gopher://127.0.0.1/x",
    ],
)
def test_hostile_urls(http_store_factory, url):
    store = http_store_factory()
    with pytest.raises(exception.InvalidLocation):
        store.get(url)


def test_allowed_prefixes(http_store_factory, http_server):
    store = http_store_factory(allowed_url_prefixes=http_server.url + "/files/")
    assert _read(store, http_server.url + "/files/obj") == DATA
    with pytest.raises(exception.InvalidLocation) as info:
        store.get(http_server.url + "/norange/obj")
    assert "outside the allowed URL prefixes" in str(info.value)
    # A redirect may not lead outside either.
    with pytest.raises(exception.InvalidLocation):
        http_store_factory(
            allowed_url_prefixes=http_server.url + "/redirect/"
        ).get(http_server.url + "/redirect/1/obj")


# -- TLS -----------------------------------------------------------------------


def test_tls_is_verified_by_default(http_store_factory, https_server):
    store = http_store_factory()
    with pytest.raises(exception.BackendUnavailable) as info:
        store.get(https_server.url + "/files/obj")
    assert "certificate verification failed" in str(info.value)


def test_tls_with_a_ca_file(http_store_factory, https_server, tls_files):
    store = http_store_factory(https_ca_certificates_file=tls_files[0])
    assert _read(store, https_server.url + "/files/obj", offset=7) == DATA[7:]
    assert store.get_size(https_server.url + "/files/obj") == len(DATA)


def test_tls_insecure_is_possible_but_explicit(http_store_factory, https_server):
    store = http_store_factory(https_insecure=True)
    assert _read(store, https_server.url + "/files/obj") == DATA


def test_no_redirect_from_https_to_http(http_store_factory, https_server, tls_files):
    store = http_store_factory(https_ca_certificates_file=tls_files[0])
    with pytest.raises(exception.BackendUnavailable) as info:
        store.get(https_server.url + "/tohttp/obj")
    assert "from https to http" in str(info.value)


def test_bad_ca_file(http_store_factory, tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    for path in (bogus, tmp_path / "missing.pem"):
        with pytest.raises(exception.ConfigError) as info:
            http_store_factory(https_ca_certificates_file=path)
        assert (info.value.group, info.value.option) == (
            "web",
            "https_ca_certificates_file",
        )
    assert os.path.exists(bogus)


def test_verify_store_reaches_the_allowed_prefixes(http_store_factory, http_server):
    http_store_factory().verify_store()  # nothing to reach: fine
    http_store_factory(allowed_url_prefixes=http_server.url + "/files/").verify_store()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = http_store_factory(allowed_url_prefixes=f"http://127.0.0.1:{port}/")
    with pytest.raises(exception.BackendUnavailable):
        store.verify_store()


def test_verify_store_checks_tls(http_store_factory, https_server):
    store = http_store_factory(allowed_url_prefixes=https_server.url + "/files/")
    with pytest.raises(exception.BackendUnavailable) as info:
        store.verify_store()
    assert "certificate verification failed" in str(info.value)
