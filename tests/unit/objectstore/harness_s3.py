"""The ``s3`` driver on a real S3 service, for the contract suite and its own tests.

The S3 service is Swift's ``s3api`` middleware in the session's Swift
cluster (:mod:`tests.swift_cluster`): a real S3 implementation, no mock.
Each store gets a bucket of its own (a fresh name, created on the first
add), so that a scrub sees only what its test wrote.
"""

from __future__ import annotations

from collections.abc import Callable
import io
from typing import Any
import uuid

from storaged.objectstore.drivers import s3 as s3_driver
from tests import swift_cluster as cluster_mod
from tests.unit.objectstore.conftest import make_conf


def new_bucket() -> str:
    """Return a bucket name no other test uses."""
    return "storaged-" + uuid.uuid4().hex[:20]


def options(cluster: cluster_mod.SwiftCluster, **overrides: object) -> dict[str, Any]:
    """Options of an ``s3`` back end on ``cluster`` (with a fresh bucket)."""
    access, secret = cluster.s3_credentials
    result: dict[str, Any] = {
        "endpoint_url": cluster.s3_endpoint,
        "region_name": cluster_mod.S3_REGION,
        "addressing_style": "path",
        "access_key": access,
        "secret_key": secret,
        "bucket": new_bucket(),
        "create_bucket_on_put": "true",
        # Swift 2.30's s3api predates flexible checksums.
        "request_checksum_calculation": "when_required",
        # One retry: Swift's proxy closes a connection whose request body it
        # did not read (a PUT into a missing bucket), and a pooled connection
        # may be reused before its close arrives (botocore retries that).
        "retries": 1,
    }
    result.update(overrides)
    return {k: v for k, v in result.items() if v is not None}


def build(
    tmp_path: Any, cluster: cluster_mod.SwiftCluster, **overrides: object
) -> s3_driver.S3Store:
    """Build an ``s3`` store (back end id ``obj``) on ``cluster``."""
    lines = ["[DEFAULT]", "enabled_backends = obj:s3", "[obj]"]
    lines += [f"{k} = {v}" for k, v in options(cluster, **overrides).items()]
    conf = make_conf(tmp_path, "\n".join(lines) + "\n")
    return s3_driver.S3Store(conf, "obj")


def raw_client(cluster: cluster_mod.SwiftCluster) -> Any:
    """A plain boto3 client of the cluster's S3 (for tests to look behind)."""
    import boto3
    from botocore.config import Config

    access, secret = cluster.s3_credentials
    return boto3.client(
        "s3",
        endpoint_url=cluster.s3_endpoint,
        region_name=cluster_mod.S3_REGION,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(**cluster_mod.S3_CLIENT_CONFIG),
    )


def harness_parts(
    tmp_path: Any, cluster: cluster_mod.SwiftCluster, chunk: int
) -> tuple[s3_driver.S3Store, Callable[[str, bytes], str], Callable[[str], None]]:
    """Return ``(store, seed, unseed)`` for the contract's Harness."""
    store = build(tmp_path, cluster, chunk_size=chunk)

    def seed(object_id: str, data: bytes) -> str:
        return store.add(object_id, io.BytesIO(data), len(data)).location

    return store, seed, store.delete
