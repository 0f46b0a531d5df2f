"""The ``swift`` driver beyond the contract, against the session's real Swift.

Large objects as SLO segments, containers spread by seed, a missing
container, re-authentication, retries (through :class:`FaultProxy`, a
proxy in front of the real Swift that fails chosen requests), Keystone v3
auth (:class:`KeystoneDouble`, a test double of Keystone only, with the real
Swift behind the storage URL it hands out) and scrub.  The options parsing
tests need no server.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid

import pytest

from storaged import exception
from storaged.objectstore import SizeMismatch
from storaged.objectstore.drivers import swift as swift_driver
from storaged.objectstore.drivers import swift_client
from storaged.objectstore.drivers.swift_opts import parse_size
from tests.unit.objectstore import harness_swift as hs
from tests.unit.objectstore.conftest import make_conf

K = 1024
CHUNK = 4 * K


def _data(n: int, salt: str = "") -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{salt}{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def build(tmp_path, swift_cluster):
    made: list[swift_driver.SwiftStore] = []

    def make(**overrides: object) -> swift_driver.SwiftStore:
        options = {**hs.small_sizes(CHUNK), **overrides}
        store = hs.build(tmp_path, swift_cluster, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def fault_proxy(swift_cluster):
    proxy = hs.FaultProxy(swift_cluster.proxy_port).start()
    yield proxy
    proxy.stop()


# -- options (no server) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5120", 5120 * K * K),
        ("64K", 64 * K),
        ("200M", 200 * K * K),
        ("5G", 5 * K * K * K),
        ("1k", K),
        ("16 MiB", 16 * K * K),
        ("4KB", 4 * K),
    ],
)
def test_sizes_are_parsed_with_units(text, expected):
    assert parse_size(text, "obj", "large_object_size") == expected


@pytest.mark.parametrize("text", ["", "x", "1.5G", "-1", "6G", "512B", "10P", "0"])
def test_bad_sizes_are_a_config_error(text):
    with pytest.raises(exception.ConfigError) as info:
        parse_size(text, "obj", "large_object_chunk_size")
    assert "large_object_chunk_size" in str(info.value)


def _conf(tmp_path, **options: object):
    lines = ["[DEFAULT]", "enabled_backends = obj:swift", "[obj]"]
    lines += [f"{k} = {v}" for k, v in options.items()]
    return make_conf(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"user": "a:b", "key": "k"}, "auth_url"),
        ({"auth_url": "http://h/auth/v1.0", "key": "k"}, "user"),
        ({"auth_url": "http://h/auth/v1.0", "user": "a:b"}, "key"),
        (
            {"auth_url": "http://h/v3", "auth_version": 3, "user": "u", "key": "k"},
            "project_name",
        ),
        (
            {
                "auth_url": "http://h/",
                "user": "u",
                "key": "k",
                "large_object_size": "9G",
            },
            "large_object_size",
        ),
        (
            {
                "auth_url": "https://h/",
                "user": "u",
                "key": "k",
                "https_ca_certificates_file": "ca.pem",
            },
            "https_ca_certificates_file",
        ),
    ],
)
def test_unusable_configuration_is_refused(tmp_path, options, option):
    with pytest.raises(exception.ConfigError) as info:
        swift_driver.SwiftStore(_conf(tmp_path, **options), "obj")
    assert option in str(info.value)


def test_key_is_secret_and_not_in_reprs(tmp_path):
    conf = _conf(tmp_path, auth_url="http://h/auth/v1.0", user="a:b", key="s3cr3t")
    store = swift_driver.SwiftStore(conf, "obj")
    opt = {o.name: o for o in swift_driver.OPTIONS}["key"]
    assert opt.secret
    assert "s3cr3t" not in repr(store.client.settings)
    auth = swift_client.Auth("AUTH_tk-token", "http://h/v1/AUTH_a")
    assert "AUTH_tk-token" not in repr(auth)


def test_v3_endpoint_is_picked_by_type_interface_and_region():
    catalog = [
        {"type": "object-store", "endpoints": [
            {"interface": "public", "region": "A", "url": "http://a"},
            {"interface": "internal", "region": "B", "url": "http://b-int"},
            {"interface": "public", "region": "B", "url": "http://b"},
        ]},
    ]  # fmt: skip
    assert swift_client.pick_endpoint(catalog, "object-store", "public", None) == (
        "http://a"
    )
    assert swift_client.pick_endpoint(catalog, "object-store", "public", "B") == (
        "http://b"
    )
    assert swift_client.pick_endpoint(catalog, "object-store", "internal", "B") == (
        "http://b-int"
    )
    assert swift_client.pick_endpoint(catalog, "object-store", "admin", None) is None


# -- the add paths -----------------------------------------------------------------


def test_small_object_is_one_put_with_its_digest(build, swift_cluster):
    store = build()
    data = _data(CHUNK)
    result = store.add(_id(), io.BytesIO(data), len(data), checksum_algo="md5")
    container, object_id = store.parse_location(result.location)
    status, headers, body = hs.raw(swift_cluster, "GET", f"{container}/{object_id}")
    assert (status, body) == (200, data)
    assert headers["x-object-meta-storaged-algo"] == "sha256"
    assert headers["x-object-meta-storaged-digest"] == hashlib.sha256(data).hexdigest()
    assert headers["x-object-meta-storaged-size"] == str(len(data))
    assert headers["x-object-meta-storaged-checksum"] == (
        "md5:" + hashlib.md5(data).hexdigest()
    )
    assert "x-static-large-object" not in headers


def test_streamed_object_gets_its_digest_afterwards(build, swift_cluster):
    store = build()
    data = _data(CHUNK + 100)  # above chunk_size, not above large_object_size
    result = store.add(_id(), io.BytesIO(data), len(data))
    container, object_id = store.parse_location(result.location)
    status, headers, body = hs.raw(swift_cluster, "GET", f"{container}/{object_id}")
    assert (status, body) == (200, data)
    assert headers["x-object-meta-storaged-digest"] == hashlib.sha256(data).hexdigest()
    assert "x-static-large-object" not in headers
    chunks, n = store.get(result.location, verify=True)
    assert (n, b"".join(chunks)) == (len(data), data)


@pytest.mark.parametrize("declared", [CHUNK + 99, CHUNK + 101])
def test_streamed_object_of_the_wrong_size_leaves_nothing(
    build, swift_cluster, declared
):
    store = build()
    object_id = _id()
    with pytest.raises(SizeMismatch):
        store.add(object_id, io.BytesIO(_data(CHUNK + 100)), declared)
    container = store.container_for(object_id)
    assert hs.names(swift_cluster, container) == []


@pytest.mark.parametrize("known", [True, False])
def test_large_object_is_segments_and_a_manifest(build, swift_cluster, known):
    store = build()
    data = _data(5 * CHUNK + 123)  # 6 segments of CHUNK
    object_id = _id()
    if known:
        result = store.add(object_id, io.BytesIO(data), len(data))
    else:
        result = store.add(object_id, iter([data[:1000], data[1000:]]), None)
    assert result.size == len(data)
    container, _ = store.parse_location(result.location)
    status, headers, _b = hs.raw(swift_cluster, "HEAD", f"{container}/{object_id}")
    assert status == 200
    assert headers["x-static-large-object"].lower() == "true"
    assert headers["content-length"] == str(len(data))
    segments = hs.names(swift_cluster, container + "_segments", object_id + "/")
    assert len(segments) == 6
    upload = headers["x-object-meta-storaged-upload"]
    assert all(s.startswith(f"{object_id}/{upload}/") for s in segments)
    # Whole, verified, and ranged across segment boundaries.
    chunks, n = store.get(result.location, verify=True, chunk_size=3000)
    assert (n, b"".join(chunks)) == (len(data), data)
    for offset, length in [
        (CHUNK - 10, 20),
        (2 * CHUNK, CHUNK),
        (5 * CHUNK + 100, None),
    ]:
        chunks, n = store.get(result.location, offset=offset, length=length)
        expected = data[offset:] if length is None else data[offset : offset + length]
        assert (n, b"".join(chunks)) == (len(expected), expected)
    assert store.get_size(result.location) == len(data)
    # Deleting removes the manifest and the segments.
    store.delete(result.location)
    assert hs.names(swift_cluster, container + "_segments", object_id + "/") == []
    with pytest.raises(exception.ObjectNotFound):
        store.get(result.location)


def test_unknown_size_within_one_segment_is_one_object(build, swift_cluster):
    store = build()
    data = _data(CHUNK - 1)
    result = store.add(_id(), iter([data[:10], data[10:]]), None)
    container, object_id = store.parse_location(result.location)
    _s, headers, body = hs.raw(swift_cluster, "GET", f"{container}/{object_id}")
    assert body == data and "x-static-large-object" not in headers


def test_failed_large_add_deletes_its_segments(build, swift_cluster):
    store = build()
    object_id = _id()

    def source():
        yield _data(3 * CHUNK)
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        store.add(object_id, source(), None)
    container = store.container_for(object_id)
    assert hs.names(swift_cluster, container) == []
    assert hs.names(swift_cluster, container + "_segments") == []


def test_large_add_of_a_taken_id_is_refused_and_cleans_up(build, swift_cluster):
    store = build()
    object_id = _id()
    first = store.add(object_id, io.BytesIO(b"first"), 5)
    with pytest.raises(exception.ObjectExists):
        store.add(object_id, io.BytesIO(_data(4 * CHUNK)), 4 * CHUNK)
    container = store.container_for(object_id)
    assert hs.names(swift_cluster, container + "_segments") == []
    assert b"".join(store.get(first.location)[0]) == b"first"


# -- containers ----------------------------------------------------------------------


def test_container_seed_spreads_objects_over_containers(build, swift_cluster):
    store = build(container_seed=1)
    base = store.container_name
    added = {}
    for i in range(12):
        object_id = _id()
        data = _data(100 + i)
        result = store.add(object_id, io.BytesIO(data), len(data))
        digest = hashlib.sha256(object_id.encode()).hexdigest()
        assert result.location == f"swift://{base}_{digest[0]}/{object_id}"
        added[result.location] = data
    containers = {loc.split("/")[2] for loc in added}
    assert len(containers) > 1
    for location, data in added.items():
        assert b"".join(store.get(location, verify=True)[0]) == data
    report = store.scrub()
    assert report.clean, report
    assert report.checked == 12


def test_missing_container_without_create_is_a_clear_error(build, swift_cluster):
    store = build(create_container_on_put="false")
    with pytest.raises(exception.BackendUnavailable) as info:
        store.add(_id(), io.BytesIO(b"x"), 1)
    assert store.container_name in str(info.value)
    assert "create_container_on_put" in str(info.value)
    with pytest.raises(exception.BackendUnavailable) as info:
        store.verify_store()
    assert "does not exist" in str(info.value)
    assert hs.raw(swift_cluster, "HEAD", store.container_name)[0] == 404
    # Once the operator created it (and its segments container), adds work.
    hs.raw(swift_cluster, "PUT", store.container_name)
    hs.raw(swift_cluster, "PUT", store.container_name + "_segments")
    store.verify_store()
    result = store.add(_id(), io.BytesIO(_data(3 * CHUNK)), 3 * CHUNK)
    assert store.get_size(result.location) == 3 * CHUNK


def test_container_deleted_behind_its_back_is_made_again(build, swift_cluster):
    store = build()
    first = store.add(_id(), io.BytesIO(b"x"), 1)
    container, object_id = store.parse_location(first.location)
    hs.raw(swift_cluster, "DELETE", f"{container}/{object_id}")
    assert hs.raw(swift_cluster, "DELETE", container)[0] == 204
    with pytest.raises(exception.BackendUnavailable) as info:
        store.add(_id(), io.BytesIO(b"y"), 1)
    assert "no longer exists" in str(info.value)
    result = store.add(_id(), io.BytesIO(b"z"), 1)
    assert b"".join(store.get(result.location)[0]) == b"z"


# -- auth ----------------------------------------------------------------------------


def test_refused_token_is_renewed_once(build):
    store = build()
    result = store.add(_id(), io.BytesIO(b"data"), 4)
    before = store.client.auth_count
    good = store.client.auth()
    # As if the token expired: Swift answers 401 to it.
    store.client._auth = swift_client.Auth("AUTH_tk" + "0" * 32, good.storage_url)
    assert b"".join(store.get(result.location)[0]) == b"data"
    assert store.client.auth_count == before + 1
    assert store.client.auth().token != "AUTH_tk" + "0" * 32


def test_credentials_in_the_auth_url_are_masked(build, swift_cluster):
    url = swift_cluster.auth_url.replace("http://", "http://someone:hunter2@")
    store = build(auth_url=url.replace("/auth/v1.0", "/nowhere"))
    with pytest.raises(exception.BackendUnavailable) as info:
        store.verify_store()
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_wrong_key_is_backend_unavailable(build):
    store = build(key="wrong")
    with pytest.raises(exception.BackendUnavailable) as info:
        store.verify_store()
    assert "authentication failed" in str(info.value)
    assert "wrong" not in str(info.value)


def test_keystone_v3_auth(build, swift_cluster):
    keystone = hs.KeystoneDouble(swift_cluster).start()
    try:
        store = build(
            auth_url=keystone.url + "/v3",
            auth_version="3",
            user=keystone.USER,
            key=keystone.PASSWORD,
            project_name=keystone.PROJECT,
            region_name="RegionTwo",
        )
        store.verify_store()
        data = _data(3 * CHUNK)
        result = store.add(_id(), io.BytesIO(data), len(data))
        assert b"".join(store.get(result.location, verify=True)[0]) == data
        assert len(keystone.requests) == 1
        assert store.client.auth().storage_url == swift_cluster.storage_url
        # PROJECT:USER in ``user`` scopes the same way; no region: the first
        # public endpoint (the decoy) is taken and cannot be reached.
        other = build(
            auth_url=keystone.url,
            auth_version="3",
            user=f"{keystone.PROJECT}:{keystone.USER}",
            key=keystone.PASSWORD,
            endpoint_type="internalURL",
            container=store.container_name,
        )
        assert b"".join(other.get(result.location)[0]) == data
        decoy = build(
            auth_url=keystone.url,
            auth_version="3",
            user=keystone.USER,
            key=keystone.PASSWORD,
            project_name=keystone.PROJECT,
            connect_timeout=1,
        )
        with pytest.raises(exception.BackendUnavailable):
            decoy.get(result.location)
        wrong = build(
            auth_url=keystone.url + "/v3",
            auth_version="3",
            user=keystone.USER,
            key="not-it",
            project_name=keystone.PROJECT,
        )
        with pytest.raises(exception.BackendUnavailable) as info:
            wrong.verify_store()
        assert "401" in str(info.value) and "not-it" not in str(info.value)
    finally:
        keystone.stop()


# -- retries and connections ------------------------------------------------------


def _via(proxy: hs.FaultProxy) -> str:
    return f"{proxy.url}/auth/v1.0"


def test_retries_on_503_then_succeeds(build, fault_proxy):
    store = build(auth_url=_via(fault_proxy), retries=3)
    store.verify_store()
    data = _data(3 * CHUNK)
    fault_proxy.fail(2)
    result = store.add(_id(), io.BytesIO(data), len(data))  # segments, manifest
    fault_proxy.fail(3, methods={"GET"})
    assert b"".join(store.get(result.location, verify=True)[0]) == data
    fault_proxy.fail(2, status=500, methods={"DELETE"})
    store.delete(result.location)
    with pytest.raises(exception.ObjectNotFound):
        store.get_size(result.location)


@pytest.mark.parametrize("size", [10, 3 * CHUNK])
def test_a_put_whose_answer_was_lost_is_recognised(build, fault_proxy, size):
    """Swift stored it, the 201 never came back: the retry's 412 is ours."""
    store = build(auth_url=_via(fault_proxy), retries=2)
    store.add(_id(), io.BytesIO(b"x"), 1)  # the containers exist now
    data = _data(size)
    object_id = _id()
    # The object's PUT (or the manifest's) is done, its answer lost.
    last = object_id if size == 10 else "multipart-manifest=put"
    fault_proxy.fail(1, methods={"PUT"}, lose=True, path_contains=last)
    result = store.add(object_id, io.BytesIO(data), size)
    assert fault_proxy.failures == 0
    assert b"".join(store.get(result.location, verify=True)[0]) == data
    with pytest.raises(exception.ObjectExists):
        store.add(object_id, io.BytesIO(data), size)


def test_a_streamed_put_whose_answer_was_lost_is_removed(
    build, fault_proxy, swift_cluster
):
    """A streamed body is not sent again: the add fails and leaves nothing."""
    store = build(auth_url=_via(fault_proxy), retries=2)
    store.add(_id(), io.BytesIO(b"x"), 1)  # the container exists now
    object_id = _id()
    data = _data(CHUNK + 10)
    fault_proxy.fail(1, methods={"PUT"}, lose=True, path_contains=object_id)
    with pytest.raises(exception.BackendUnavailable):
        store.add(object_id, io.BytesIO(data), len(data))
    assert fault_proxy.failures == 0
    assert object_id not in hs.names(swift_cluster, store.container_name)
    result = store.add(object_id, io.BytesIO(data), len(data))
    assert b"".join(store.get(result.location, verify=True)[0]) == data


def test_a_delete_whose_answer_was_lost_succeeds(build, fault_proxy):
    store = build(auth_url=_via(fault_proxy), retries=2)
    result = store.add(_id(), io.BytesIO(b"abc"), 3)
    fault_proxy.fail(1, methods={"DELETE"}, lose=True)
    store.delete(result.location)
    assert fault_proxy.failures == 0
    with pytest.raises(exception.ObjectNotFound):
        store.delete(result.location)


def test_no_retries_left_is_backend_unavailable(build, fault_proxy):
    store = build(auth_url=_via(fault_proxy), retries=1)
    result = store.add(_id(), io.BytesIO(b"abc"), 3)
    fault_proxy.fail(2, methods={"GET"})
    with pytest.raises(exception.BackendUnavailable) as info:
        store.get(result.location)
    assert "503" in str(info.value)
    assert fault_proxy.failures == 0


def test_a_streamed_body_is_not_sent_twice(build, fault_proxy, swift_cluster):
    store = build(auth_url=_via(fault_proxy), retries=3)
    object_id = _id()
    data = _data(CHUNK + 10)  # streamed: its body cannot be sent again
    store.add(_id(), io.BytesIO(b"x"), 1)  # the container exists now
    fault_proxy.fail(1, methods={"PUT"})
    with pytest.raises(exception.BackendUnavailable):
        store.add(object_id, io.BytesIO(data), len(data))
    puts = [p for m, p in fault_proxy.seen if m == "PUT" and p.endswith(object_id)]
    assert len(puts) == 1
    assert object_id not in hs.names(swift_cluster, store.container_for(object_id))


def test_connections_are_kept_alive(build, fault_proxy):
    store = build(auth_url=_via(fault_proxy))
    locations = [store.add(_id(), io.BytesIO(b"x" * 10), 10).location for _ in range(5)]
    for location in locations * 4:
        assert b"".join(store.get(location)[0]) == b"x" * 10
        assert store.get_size(location) == 10
    # auth + the first request, then one kept-alive connection.
    assert fault_proxy.connections <= 3, fault_proxy.connections
    # A read closed early does not hand back a connection with a body left.
    big = store.add(_id(), io.BytesIO(_data(3 * CHUNK)), 3 * CHUNK).location
    chunks, _n = store.get(big, chunk_size=100)
    next(chunks)
    chunks.close()
    assert b"".join(store.get(locations[0])[0]) == b"x" * 10


# -- scrub ----------------------------------------------------------------------------


def test_scrub_finds_data_overwritten_behind_its_back(build, swift_cluster):
    store = build()
    good = store.add(_id(), io.BytesIO(b"good data"), 9)
    bad = store.add(_id(), io.BytesIO(b"original!"), 9)
    container, object_id = store.parse_location(bad.location)
    _s, headers, _b = hs.raw(swift_cluster, "HEAD", f"{container}/{object_id}")
    keep = {k: v for k, v in headers.items() if k.startswith("x-object-meta-")}
    status, _h, _b = hs.raw(
        swift_cluster, "PUT", f"{container}/{object_id}", b"tampered!", keep
    )
    assert status == 201
    report = store.scrub()
    assert [f.where for f in report.corrupt] == [bad.location]
    assert report.checked == 2 and not report.clean
    with pytest.raises(exception.CorruptObject):
        b"".join(store.get(bad.location, verify=True)[0])
    assert b"".join(store.get(good.location, verify=True)[0]) == b"good data"
    # Never removed, even with reclaim.
    store.scrub(reclaim=True)
    assert store.get_size(bad.location) == 9


def test_scrub_finds_a_large_object_missing_a_segment(build, swift_cluster):
    store = build()
    object_id = _id()
    result = store.add(object_id, io.BytesIO(_data(3 * CHUNK)), 3 * CHUNK)
    container, _ = store.parse_location(result.location)
    segment = hs.names(swift_cluster, container + "_segments")[1]
    hs.raw(swift_cluster, "DELETE", f"{container}_segments/{segment}")
    report = store.scrub()
    assert len(report.corrupt) + len(report.errors) == 1, report
    assert not report.clean


def test_scrub_reclaims_orphan_segments_after_the_grace(build, swift_cluster):
    store = build()
    live = store.add(_id(), io.BytesIO(_data(3 * CHUNK)), 3 * CHUNK)
    container = store.container_name
    segments = container + "_segments"
    old = f"{time.time() - 2 * 86400:.6f}-{uuid.uuid4().hex}"
    new = f"{time.time():.6f}-{uuid.uuid4().hex}"
    for prefix in (f"dead/{old}", f"running/{new}"):
        for i in range(3):
            hs.raw(swift_cluster, "PUT", f"{segments}/{prefix}/{i:08d}", b"s" * 10)
    report = store.scrub()
    assert [f.where for f in report.orphans] == [f"swift://{segments}/dead/{old}/"]
    assert report.in_progress == 1
    assert not report.clean
    report = store.scrub(reclaim=True)
    assert report.reclaimed == [f"swift://{segments}/dead/{old}/"]
    assert report.clean, report
    left = hs.names(swift_cluster, segments)
    assert not [n for n in left if n.startswith("dead/")]
    assert len([n for n in left if n.startswith("running/")]) == 3
    assert len([n for n in left if n.startswith(live.location.rsplit("/", 1)[1])]) == 3
    assert b"".join(store.get(live.location, verify=True)[0]) == _data(3 * CHUNK)


def test_scrub_keeps_the_segments_of_an_object_it_could_not_read(
    build, fault_proxy, swift_cluster
):
    store = build(auth_url=_via(fault_proxy), orphan_grace=0)
    object_id = _id()
    result = store.add(object_id, io.BytesIO(_data(3 * CHUNK)), 3 * CHUNK)
    fault_proxy.fail(1, methods={"GET"}, path_contains=object_id)
    report = store.scrub(reclaim=True)
    assert fault_proxy.failures == 0
    assert [f.where for f in report.errors] == [result.location]
    assert report.reclaimed == [] and report.orphans == []
    segments = store.container_name + "_segments"
    assert len(hs.names(swift_cluster, segments)) == 3
    assert b"".join(store.get(result.location, verify=True)[0]) == _data(3 * CHUNK)


def test_scrub_reclaims_an_object_without_its_digest(build, swift_cluster):
    store = build(orphan_grace=0)
    kept = store.add(_id(), io.BytesIO(b"kept"), 4)
    container = store.container_name
    hs.raw(swift_cluster, "PUT", f"{container}/half-done", b"no digest")
    with pytest.raises(exception.CorruptObject):
        store.get(f"swift://{container}/half-done", verify=True)
    report = store.scrub(reclaim=True)
    assert report.reclaimed == [f"swift://{container}/half-done"]
    assert report.checked == 1 and report.clean
    assert hs.names(swift_cluster, container) == [kept.location.rsplit("/", 1)[1]]


def test_scrub_of_seeded_containers_lists_only_ours(build, swift_cluster):
    store = build(container_seed=2)
    store.add(_id(), io.BytesIO(b"one"), 3)
    # A container that looks alike but is not one of ours.
    hs.raw(swift_cluster, "PUT", store.container_name + "_xyz")
    hs.raw(swift_cluster, "PUT", f"{store.container_name}_xyz/o", b"not ours")
    report = store.scrub()
    assert report.checked == 1 and report.clean


def test_listing_pages_through_a_container(build, swift_cluster):
    store = build()
    container = store.container_name
    hs.raw(swift_cluster, "PUT", container)
    for i in range(5):
        hs.raw(swift_cluster, "PUT", f"{container}/o{i}", b"x")
    names = [e["name"] for e in store.listing(container, limit=2)]
    assert names == [f"o{i}" for i in range(5)]
    assert [e["name"] for e in store.listing(container, prefix="o3")] == ["o3"]
    assert list(store.listing(container + "-missing")) == []


def test_location_must_name_a_container_and_an_id(build):
    store = build()
    for bad in ("swift://", "swift://c", "swift://c/", "swift://c/a/b", "swift://c/.x"):
        with pytest.raises(exception.InvalidLocation):
            store.get(bad)
