"""The Swift cluster of tests.swift_cluster, driven by real clients.

python-swiftclient over v1 auth (objects, a static large object), boto3 over
s3api (objects, a multipart upload), and the cluster's own promises: its
private ``swift.conf`` is the one in use, and no process outlives it, even
when the test process that started it is killed.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.swift_cluster import ACCOUNT
from tests.swift_cluster import KEY
from tests.swift_cluster import S3_CLIENT_CONFIG
from tests.swift_cluster import S3_REGION
from tests.swift_cluster import USER
from tests.swift_cluster import SwiftCluster

swiftclient = pytest.importorskip("swiftclient")
from swiftclient import client as swift  # noqa: E402

MiB = 1024 * 1024
ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def conn(swift_cluster):
    return swift.Connection(
        authurl=swift_cluster.auth_url, user=USER, key=KEY, retries=0
    )


@pytest.fixture
def s3(swift_cluster):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    access, secret = swift_cluster.s3_credentials
    return boto3.client(
        "s3",
        endpoint_url=swift_cluster.s3_endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=S3_REGION,
        config=Config(**S3_CLIENT_CONFIG),
    )


def test_auth_and_urls(swift_cluster):
    token = swift_cluster.token()
    assert token.startswith("AUTH_tk")
    url, token2 = swift.get_auth(swift_cluster.auth_url, USER, KEY)
    assert url == swift_cluster.storage_url
    assert token2 == token  # tempauth hands out the user's live token
    assert swift_cluster.storage_url.endswith("/v1/" + ACCOUNT)
    with pytest.raises(swift.ClientException) as err:
        swift.get_auth(swift_cluster.auth_url, USER, "wrong")
    assert err.value.http_status == 401


def test_object_put_get_list_delete(swift_cluster, conn):
    container = _name("c")
    body = os.urandom(MiB)
    conn.put_container(container)
    etag = conn.put_object(container, "one-mib", body)
    assert etag == hashlib.md5(body).hexdigest()

    headers, got = conn.get_object(container, "one-mib")
    assert got == body
    assert headers["content-length"] == str(MiB)
    assert headers["etag"] == etag

    _h, listing = conn.get_container(container)
    assert [(o["name"], o["bytes"]) for o in listing] == [("one-mib", MiB)]
    _h, containers = conn.get_account(prefix=container)
    assert [c["name"] for c in containers] == [container]

    conn.delete_object(container, "one-mib")
    with pytest.raises(swift.ClientException) as err:
        conn.get_object(container, "one-mib")
    assert err.value.http_status == 404
    assert conn.get_container(container)[1] == []
    conn.delete_container(container)


def test_static_large_object(conn):
    container = _name("slo")
    conn.put_container(container)
    parts = [os.urandom(MiB), os.urandom(MiB), os.urandom(1000)]
    manifest = []
    for i, part in enumerate(parts):
        etag = conn.put_object(container, f"seg/{i:02d}", part)
        manifest.append(
            {"path": f"/{container}/seg/{i:02d}", "etag": etag,
             "size_bytes": len(part)}
        )  # fmt: skip
    conn.put_object(
        container,
        "big",
        json.dumps(manifest),
        query_string="multipart-manifest=put",
    )

    headers, got = conn.get_object(container, "big")
    assert got == b"".join(parts)
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == 2 * MiB + 1000
    # A ranged read across the first segment boundary
    _h, piece = conn.get_object(
        container, "big", headers={"Range": f"bytes={MiB - 10}-{MiB + 9}"}
    )
    assert piece == parts[0][-10:] + parts[1][:10]

    _h, listing = conn.get_container(container)
    assert [o["name"] for o in listing] == [
        "big", "seg/00", "seg/01", "seg/02"
    ]  # fmt: skip

    conn.delete_object(container, "big", query_string="multipart-manifest=delete")
    assert conn.get_container(container)[1] == []
    conn.delete_container(container)


def test_s3_put_get_list_delete(s3):
    bucket = _name("b")
    body = os.urandom(MiB)
    s3.create_bucket(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key="dir/one-mib", Body=body)
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()

    got = s3.get_object(Bucket=bucket, Key="dir/one-mib")
    assert got["Body"].read() == body
    assert got["ContentLength"] == MiB
    ranged = s3.get_object(Bucket=bucket, Key="dir/one-mib", Range="bytes=0-9")
    assert ranged["Body"].read() == body[:10]

    listing = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [
        ("dir/one-mib", MiB)
    ]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in buckets

    s3.delete_object(Bucket=bucket, Key="dir/one-mib")
    assert s3.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    s3.delete_bucket(Bucket=bucket)


def test_s3_multipart_upload(s3, conn):
    bucket = _name("mpu")
    s3.create_bucket(Bucket=bucket)
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(123)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")
    upload_id = upload["UploadId"]
    pending = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in pending] == [("big", upload_id)]

    done = []
    for number, part in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key="big", UploadId=upload_id,
            PartNumber=number, Body=part,
        )  # fmt: skip
        done.append({"PartNumber": number, "ETag": answer["ETag"]})
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload_id)
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload_id,
        MultipartUpload={"Parts": done},
    )  # fmt: skip

    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts)
    # S3's multipart ETag: MD5 of the parts' MD5s, dash, count
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    assert got["ETag"] == '"%s-3"' % hashlib.md5(digests).hexdigest()
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # The same data through the Swift API: the bucket is a container and
    # the upload a static large object.
    headers, body = conn.get_object(bucket, "big")
    assert body == b"".join(parts)
    assert headers["x-static-large-object"] == "True"

    s3.delete_object(Bucket=bucket, Key="big")
    s3.delete_bucket(Bucket=bucket)


def test_private_swift_conf_is_used(swift_cluster, conn):
    """Objects are placed by the private hash prefix and suffix."""
    container = _name("hash")
    conn.put_container(container)
    conn.put_object(container, "o", b"x")
    conf = configparser.ConfigParser()
    conf.read(os.path.join(swift_cluster.directory, "etc", "swift.conf"))
    prefix = conf.get("swift-hash", "swift_hash_path_prefix")
    suffix = conf.get("swift-hash", "swift_hash_path_suffix")
    name = hashlib.md5(
        f"{prefix}/{ACCOUNT}/{container}/o{suffix}".encode()
    ).hexdigest()
    objects = os.path.join(swift_cluster.directory, "srv", "d1", "objects")
    found = [
        root for root, dirs, _files in os.walk(objects) if name in dirs
    ]
    assert len(found) == 1


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except OSError:
        return True


def _wait_all_refuse(ports, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(_refuses(p) for p in ports):
            return True
        time.sleep(0.2)
    return False


def _live_members(groups) -> list[int]:
    """Processes (not zombies) in any of the process groups."""
    live = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) in groups:
            live.append(int(entry))
    return live


def test_stop_leaves_no_process(swift_cluster, tmp_path):
    """With forked workers, stop() ends every process group it started."""
    cluster = SwiftCluster(str(tmp_path), workers=2)
    with cluster:
        groups = [p.pid for p in cluster.processes.values()]
        ports = list(cluster.ports.values())
        assert cluster.token()
    assert _live_members(set(groups)) == []
    assert _wait_all_refuse(ports)


_CHILD = """\
import json, signal, sys
from tests.swift_cluster import SwiftCluster
c = SwiftCluster(sys.argv[1], workers=1).start()
print(json.dumps({"ports": list(c.ports.values()),
                  "pids": [p.pid for p in c.processes.values()]}), flush=True)
signal.pause()
"""


def test_killed_owner_leaves_no_orphan(swift_cluster, tmp_path):
    """A test process SIGKILLed mid-run takes its servers with it."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = owner.stdout.readline()
        assert line, "the cluster did not start in the child"
        started = json.loads(line)
        assert not any(_refuses(p) for p in started["ports"])
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
    assert _wait_all_refuse(started["ports"])
    groups = set(started["pids"])
    deadline = time.monotonic() + 60
    while _live_members(groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _live_members(groups) == []
