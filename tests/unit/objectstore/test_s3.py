"""The ``s3`` driver against a real S3 service (Swift's s3api), beyond the contract.

Multipart uploads (parallel parts, unknown sizes, failures that must leave
no upload behind), ranged and verified reads of multipart objects, the
bucket and credential errors an operator meets first, and scrub finding
corruption and what dead writers leave.  Every test talks to the session's
Swift cluster (:mod:`tests.swift_cluster`); a plain boto3 client looks
behind the driver's back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
import ssl
import sys
import threading
import time
import uuid

import pytest

from storaged import exception
from storaged.objectstore import SizeMismatch
from storaged.objectstore.drivers import s3 as s3_driver
from storaged.objectstore.drivers import s3_options
from tests.unit.objectstore import harness_s3

MiB = 1024 * 1024


def _data(n: int, salt: str = "") -> bytes:
    block = hashlib.sha256(salt.encode()).digest() * (MiB // 32)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{salt}{i}".encode()).digest() + block
        i += 1
    return bytes(out[:n])


@pytest.fixture
def make_store(tmp_path, swift_cluster):
    made = []

    def build(**overrides):
        store = harness_s3.build(tmp_path, swift_cluster, **overrides)
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()


@pytest.fixture
def raw(swift_cluster):
    return harness_s3.raw_client(swift_cluster)


def _multipart_store(make_store, **overrides):
    options = {
        "multipart_threshold": "5M",
        "multipart_chunk_size": "5M",
        "max_concurrency": 4,
    }
    options.update(overrides)
    return make_store(**options)


def _uploads(raw, bucket):
    return raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def _keys(raw, bucket):
    return [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])]


class _Concurrency:
    """Counts the part uploads running at once (wraps the real client's call)."""

    def __init__(self, store):
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        real = store.client.upload_part

        def upload_part(**kwargs):
            with self.lock:
                self.now += 1
                self.calls += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.2)  # long enough for the next parts to start
                return real(**kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        store.client.upload_part = upload_part


def test_multipart_add_sends_parts_in_parallel(make_store, raw):
    store = _multipart_store(make_store)
    seen = _Concurrency(store)
    data = _data(23 * MiB, "multi")
    result = store.add(uuid.uuid4().hex, io.BytesIO(data), len(data))
    assert seen.calls == 5  # 4 parts of 5 MiB and 3 MiB
    assert seen.most > 1
    assert result.metadata == {"parts": "5"}
    assert result.multihash == hashlib.sha256(data).hexdigest()
    key = result.location.rsplit("/", 1)[1]
    head = raw.head_object(Bucket=store.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-5")
    assert head["ContentLength"] == len(data)
    record = json.loads(
        raw.get_object(Bucket=store.bucket, Key=".digests/" + key)["Body"].read()
    )
    assert record["digest"] == result.multihash
    assert record["size"] == len(data)
    assert _uploads(raw, store.bucket) == []


def test_ranged_and_verified_reads_of_a_multipart_object(make_store):
    store = _multipart_store(make_store)
    data = _data(12 * MiB + 17, "ranges")
    location = store.add(uuid.uuid4().hex, io.BytesIO(data), len(data)).location
    chunks, n = store.get(location, verify=True)
    assert (n, b"".join(chunks)) == (len(data), data)
    for offset, length in [
        (5 * MiB - 3, 6),  # across the first part boundary
        (10 * MiB, None),  # the last part
        (0, 5 * MiB + 1),
        (len(data) - 1, 10),
    ]:
        chunks, n = store.get(location, offset=offset, length=length)
        end = None if length is None else offset + length
        assert b"".join(chunks) == data[offset:end]
        assert n == len(data[offset:end])
    assert store.get_size(location) == len(data)


def test_unknown_size_turns_multipart_past_the_threshold(make_store, raw):
    store = _multipart_store(make_store)
    pieces = [_data(MiB + i, str(i)) for i in range(12)]
    result = store.add(uuid.uuid4().hex, iter(pieces), None)
    data = b"".join(pieces)
    assert result.size == len(data)
    assert result.metadata == {"parts": "3"}
    chunks, _n = store.get(result.location, verify=True)
    assert b"".join(chunks) == data
    assert _uploads(raw, store.bucket) == []


def test_unknown_size_under_the_threshold_is_one_put(make_store, raw):
    store = _multipart_store(make_store)
    data = _data(3 * MiB, "small")
    result = store.add(uuid.uuid4().hex, iter([data[:MiB], data[MiB:]]), None)
    assert result.metadata == {}
    key = result.location.rsplit("/", 1)[1]
    meta = raw.head_object(Bucket=store.bucket, Key=key)["Metadata"]
    assert meta[s3_driver.META_DIGEST] == hashlib.sha256(data).hexdigest()
    assert _keys(raw, store.bucket) == [key]


def test_a_failing_source_aborts_the_upload(make_store, raw):
    store = _multipart_store(make_store)
    object_id = uuid.uuid4().hex

    def source():
        for i in range(12):
            yield _data(MiB, str(i))
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        store.add(object_id, source(), None)
    assert _uploads(raw, store.bucket) == []
    assert _keys(raw, store.bucket) == []
    with pytest.raises(SizeMismatch):
        store.add(object_id, io.BytesIO(_data(11 * MiB)), 12 * MiB)
    assert _uploads(raw, store.bucket) == []
    assert _keys(raw, store.bucket) == []


def test_delete_of_a_multipart_object_removes_its_record(make_store, raw):
    store = _multipart_store(make_store)
    data = _data(6 * MiB)
    location = store.add(uuid.uuid4().hex, io.BytesIO(data), len(data)).location
    assert len(_keys(raw, store.bucket)) == 2
    store.delete(location)
    assert _keys(raw, store.bucket) == []
    with pytest.raises(exception.ObjectNotFound):
        store.get(location)


def test_missing_bucket(make_store, raw):
    store = make_store(create_bucket_on_put="false")
    with pytest.raises(exception.BackendUnavailable, match="does not exist"):
        store.verify_store()
    with pytest.raises(exception.BackendUnavailable, match="does not exist"):
        store.add(uuid.uuid4().hex, io.BytesIO(b"data"), 4)
    buckets = [b["Name"] for b in raw.list_buckets().get("Buckets", [])]
    assert store.bucket not in buckets


def test_missing_bucket_is_created_on_put_when_allowed(make_store, raw):
    store = make_store(create_bucket_on_put="true")
    store.verify_store()  # it will be created: not an error
    location = store.add(uuid.uuid4().hex, io.BytesIO(b"data"), 4).location
    assert b"".join(store.get(location, verify=True)[0]) == b"data"
    store.verify_store()


def test_bad_credentials_are_a_clear_error(make_store):
    secret = "not-the-" + uuid.uuid4().hex
    store = make_store(secret_key=secret)
    for call in (
        store.verify_store,
        lambda: store.add(uuid.uuid4().hex, io.BytesIO(b"x"), 1),
    ):
        with pytest.raises(exception.StoreError, match="access denied") as info:
            call()
        # not worth retrying, and never carrying the secret
        assert not isinstance(info.value, exception.RetryableError)
        assert secret not in str(info.value)


def test_credentials_from_the_aws_chain(
    make_store, swift_cluster, monkeypatch, tmp_path
):
    access, secret = swift_cluster.s3_credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    store = make_store(access_key=None, secret_key=None)
    location = store.add(uuid.uuid4().hex, io.BytesIO(b"chain"), 5).location
    assert b"".join(store.get(location)[0]) == b"chain"
    # and without any credentials, the error says where they come from
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bare = make_store(access_key=None, secret_key=None, bucket=store.bucket)
    with pytest.raises(exception.StoreError, match="no S3 credentials"):
        bare.get_size(location)


def test_scrub_finds_an_overwritten_object(make_store, raw):
    store = _multipart_store(make_store)
    good = store.add(uuid.uuid4().hex, io.BytesIO(b"good data"), 9).location
    bad = store.add(uuid.uuid4().hex, io.BytesIO(b"original"), 8).location
    big_data = _data(6 * MiB)
    big = store.add(uuid.uuid4().hex, io.BytesIO(big_data), len(big_data)).location
    # Another body under the same key, with the metadata kept.
    key = bad.rsplit("/", 1)[1]
    meta = raw.head_object(Bucket=store.bucket, Key=key)["Metadata"]
    raw.put_object(Bucket=store.bucket, Key=key, Body=b"tampered", Metadata=meta)
    # A multipart object whose record no longer matches.
    big_key = ".digests/" + big.rsplit("/", 1)[1]
    record = json.loads(raw.get_object(Bucket=store.bucket, Key=big_key)["Body"].read())
    record["digest"] = hashlib.sha256(b"other").hexdigest()
    raw.put_object(Bucket=store.bucket, Key=big_key, Body=json.dumps(record).encode())

    report = store.scrub()
    assert sorted(f.where for f in report.corrupt) == sorted([bad, big])
    assert report.checked == 1
    assert not report.clean
    assert b"".join(store.get(bad)[0]) == b"tampered"  # unverified: served
    with pytest.raises(exception.CorruptObject):
        b"".join(store.get(bad, verify=True)[0])
    chunks, _n = store.get(big, verify=True)
    with pytest.raises(exception.CorruptObject):
        for _chunk in chunks:
            pass
    assert b"".join(store.get(good, verify=True)[0]) == b"good data"
    # Reclaim never removes corrupt objects.
    store.scrub(reclaim=True)
    assert store.get_size(bad) == 8


def test_scrub_aborts_incomplete_uploads_once_old_enough(make_store, raw):
    store = _multipart_store(make_store, orphan_grace=3600)
    store.add(uuid.uuid4().hex, io.BytesIO(b"x"), 1)  # creates the bucket
    key = uuid.uuid4().hex
    upload = raw.create_multipart_upload(Bucket=store.bucket, Key=key)
    raw.upload_part(
        Bucket=store.bucket,
        Key=key,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=_data(5 * MiB),
    )
    raw.put_object(Bucket=store.bucket, Key=".digests/" + key, Body=b"{}")
    report = store.scrub(reclaim=True)
    assert (report.in_progress, report.orphans, report.reclaimed) == (2, [], [])
    assert report.clean
    assert len(_uploads(raw, store.bucket)) == 1

    store.orphan_grace = 0
    report = store.scrub()
    assert len(report.orphans) == 2 and not report.clean
    assert len(_uploads(raw, store.bucket)) == 1  # reported, not removed
    report = store.scrub(reclaim=True)
    assert len(report.reclaimed) == 2
    assert report.clean and report.checked == 1
    assert _uploads(raw, store.bucket) == []
    assert ".digests/" + key not in _keys(raw, store.bucket)


def test_scrub_reports_keys_it_did_not_write(make_store, raw):
    store = make_store()
    store.add(uuid.uuid4().hex, io.BytesIO(b"x"), 1)
    raw.put_object(Bucket=store.bucket, Key="foreign", Body=b"not ours")
    raw.put_object(Bucket=store.bucket, Key="a/b", Body=b"not an id")
    report = store.scrub(reclaim=True)
    assert report.checked == 1
    assert sorted(f.where.rsplit("/", 1)[1] for f in report.orphans) == ["b", "foreign"]
    assert report.reclaimed == []
    assert store.get_size(store.location("foreign")) == 8


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"bucket": None}, "bucket"),
        ({"bucket": "Not_A_Bucket"}, "bucket"),
        ({"secret_key": None}, "secret_key"),
        ({"access_key": None}, "access_key"),
        ({"endpoint_url": "ftp://example.org"}, "endpoint_url"),
        ({"https_ca_certificates_file": "relative.pem"}, "https_ca_certificates_file"),
    ],
)
def test_configuration_errors(make_store, options, option):
    with pytest.raises(exception.ConfigError) as info:
        make_store(**options)
    assert option in str(info.value)


def test_missing_boto3_is_one_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(exception.ConfigError, match="needs boto3"):
        s3_driver._boto()


def test_location_of_another_bucket_is_refused(make_store):
    store = make_store()
    with pytest.raises(exception.InvalidLocation, match="bucket"):
        store.get("s3://another-bucket/abc")
    with pytest.raises(exception.InvalidLocation, match="object id"):
        store.get(f"s3://{store.bucket}/a/b")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5M", 5 * MiB),
        ("5MiB", 5 * MiB),
        ("100m", 100 * MiB),
        ("1G", 1024 * MiB),
        ("4096", 4096),
        ("8K", 8192),
    ],
)
def test_byte_sizes(text, size):
    assert s3_options.ByteSize()(text) == size


@pytest.mark.parametrize("text", ["", "5X", "-1M", "1.5M", "M"])
def test_bad_byte_sizes(text):
    with pytest.raises(ValueError):
        s3_options.ByteSize()(text)


def test_option_names_are_pinned():
    assert sorted(o.name for o in s3_options.OPTIONS) == sorted(
        [
            "endpoint_url",
            "region_name",
            "addressing_style",
            "access_key",
            "secret_key",
            "bucket",
            "create_bucket_on_put",
            "multipart_threshold",
            "multipart_chunk_size",
            "max_concurrency",
            "request_checksum_calculation",
            "https_ca_certificates_file",
            "https_insecure",
            "connect_timeout",
            "read_timeout",
            "retries",
            "chunk_size",
            "orphan_grace",
        ]
    )


def test_part_sizes(make_store):
    from storaged.objectstore.drivers import s3_write

    store = make_store(multipart_chunk_size="8M")
    known = s3_write.Upload(store, "x", 100 * 1024 * MiB, "sha256", None)
    # 1,000 parts must hold a declared size (s3api's default limit)
    assert known.part_size * s3_write.MAX_PARTS >= 100 * 1024 * MiB
    assert s3_write.Upload(store, "x", 64 * MiB, "sha256", None).part_size == 8 * MiB
    unknown = s3_write.Upload(store, "x", None, "sha256", None)
    sizes = []
    for _ in range(s3_write.MAX_PARTS):
        sizes.append(unknown._next_part_size())
        unknown.parts.append({})
    assert sizes[0] == sizes[99] == 8 * MiB
    assert sizes[100] == 16 * MiB
    assert sum(sizes) > 40 * 1024 * MiB  # ~43 GiB of unknown size in 1,000 parts


def test_client_settings(make_store):
    store = make_store(retries=4, connect_timeout=3, read_timeout=7)
    config = store.client.meta.config
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (3, 7)
    assert config.request_checksum_calculation == "when_required"
    assert config.s3["addressing_style"] == "path"


class _TlsFront:
    """A TLS front end for the cluster's proxy: HTTPS in, plain HTTP to Swift.

    It terminates TLS with a self-signed certificate for 127.0.0.1 and copies
    bytes both ways, so that the driver talks HTTPS to the real s3api.
    """

    def __init__(self, cert: str, key: str, port: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.target = port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tls_front(swift_cluster, tls_files):
    front = _TlsFront(*tls_files, swift_cluster.proxy_port)
    yield front
    front.close()


def test_https_endpoint_is_verified(make_store, tls_front, tls_files):
    store = make_store(endpoint_url=tls_front.url)
    with pytest.raises(exception.BackendUnavailable, match=r"SSL|certificate"):
        store.add(uuid.uuid4().hex, io.BytesIO(b"x"), 1)
    for options in (
        {"https_ca_certificates_file": tls_files[0]},
        {"https_insecure": "true"},
    ):
        store = make_store(endpoint_url=tls_front.url, **options)
        data = _data(6 * MiB, "tls")
        location = store.add(uuid.uuid4().hex, io.BytesIO(data), len(data)).location
        assert b"".join(store.get(location, verify=True)[0]) == data


def test_flexible_checksums_over_https_need_when_required(
    make_store, tls_front, tls_files, raw
):
    """Why ``request_checksum_calculation`` exists: s3api 2.30 refuses aws-chunked."""
    store = make_store(
        endpoint_url=tls_front.url,
        https_ca_certificates_file=tls_files[0],
        request_checksum_calculation="when_supported",
    )
    store.create_bucket()
    for size in (10, 6 * MiB):
        with pytest.raises(exception.StoreError, match="when_required") as info:
            store.add(uuid.uuid4().hex, io.BytesIO(_data(size)), size)
        assert not isinstance(info.value, exception.RetryableError)
    assert _keys(raw, store.bucket) == []
    assert _uploads(raw, store.bucket) == []


def test_s3api_has_no_conditional_put(make_store, raw):
    """Why an add sends a HEAD first: s3api refuses If-None-Match on PUT."""
    store = make_store()
    store.create_bucket()
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="NotImplemented"):
        raw.put_object(Bucket=store.bucket, Key="k", Body=b"x", IfNoneMatch="*")


def test_concurrent_adds_from_threads(make_store, raw):
    """One store (one boto3 client) serves adds from several threads at once."""
    import concurrent.futures

    store = _multipart_store(make_store, max_concurrency=2)
    objects = {uuid.uuid4().hex: _data(n, str(n)) for n in (10, 6 * MiB, 0, 11 * MiB)}
    objects.update({uuid.uuid4().hex: _data(1000 + i, str(i)) for i in range(4)})

    def add(object_id: str) -> str:
        data = objects[object_id]
        return store.add(object_id, iter([data[:MiB], data[MiB:]]), None).location

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        locations = dict(zip(objects, pool.map(add, list(objects)), strict=True))
    for object_id, location in locations.items():
        chunks, _n = store.get(location, verify=True)
        assert b"".join(chunks) == objects[object_id]
    assert _uploads(raw, store.bucket) == []
    assert store.scrub().clean
