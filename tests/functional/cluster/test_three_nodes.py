"""Three storaged nodes on one machine, sharing the engines of a cluster.

Each node has its own ``state_path`` and ``node_id``; they share a real
Swift cluster for object data (``swift`` back end), one PostgreSQL for the
catalog and the state store, and a Redis for coordination
(docs/deployment.rst).  What an operator of such a cluster relies on:

* an object written through one node is read and listed through the others
  (and its data is in Swift, not on a node's disk);
* a node with ``cache = true`` serves reads from its own object cache;
* container sync runs with a worker on each node, and finishes when one of
  them is SIGKILLed mid-way (the others take over its share);
* a node whose API was SIGKILLed serves at once when it is started again;
* ``storaged-manage cluster members`` and ``status`` on any node show all three.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.cluster.nodes import Daemon
from tests.functional.cluster.nodes import NodeApi
from tests.functional.cluster.nodes import manage
from tests.functional.sync.cluster import SYNC_KEY
from tests.functional.sync.cluster import snapshot
from tests.functional.sync.cluster import wait_for

pytest.importorskip("swiftclient")

NODES = ("node-a", "node-b", "node-c")


def _shared(swift, postgres_url: str, schemas: tuple[str, str], coordination: str,
            container: str) -> dict[str, dict[str, str]]:
    catalog_schema, state_schema = schemas
    return {
        "data": {
            "auth_url": swift.auth_url,
            "auth_version": "1",
            "user": "test:tester",
            "key": "testing",
            "container": container,
        },
        "catalog": {"backend_url": f"{postgres_url}?schema={catalog_schema}"},
        "kvs": {"backend_url": f"{postgres_url}?schema={state_schema}"},
        "coordination": {
            "backend_url": coordination,
            "heartbeat_interval": "0.3",
            "membership_ttl": "2",
            "lock_ttl": "2",
        },
        "heartbeat": {"publish_interval": "0.5"},
        "sync": {"interval": "0.5", "request_timeout": "5", "concurrency": "4"},
        "daemon": {"stop_timeout": "10"},
    }


@pytest.fixture
def cluster(tmp_path, swift_cluster, postgres_url, schemas, redis_coordination):
    (tmp_path / "target").mkdir()
    target = ApiServer(tmp_path / "target").start()
    container = "storaged_" + uuid.uuid4().hex[:8]
    shared = _shared(swift_cluster, postgres_url, schemas, redis_coordination,
                     container)
    nodes = []
    for node_id in NODES:
        sections = {name: dict(options) for name, options in shared.items()}
        if node_id == "node-c":
            sections["data"]["cache"] = "true"
        (tmp_path / node_id).mkdir()
        nodes.append(NodeApi(
            tmp_path / node_id, node_id, sections, {"dst": target.url},
            default={"enabled_backends": "data:swift"},
            # Tokens of one node are good on every node.
            api={"token_secret": "one-secret-for-the-cluster"},
        ))
    daemons: list[Daemon] = []
    try:
        for node in nodes:
            node.start()
        yield nodes, target, daemons, container
    finally:
        for daemon in daemons:
            daemon.kill()
        for node in nodes:
            node.kill()
        target.kill()


def test_any_node_serves_what_another_wrote(cluster, swift_cluster):
    (a, b, c), _target, _daemons, container = cluster
    conn_a = a.connection()
    conn_a.put_container("photos")
    bodies = {"n%02d" % i: (b"object %d " % i) * 100 for i in range(20)}
    for name, body in bodies.items():
        conn_a.put_object("photos", name, body, content_type="image/x-test",
                          headers={"X-Object-Meta-Node": "a"})
    for node in (b, c):
        conn = node.connection()
        _headers, listing = conn.get_container("photos")
        assert [o["name"] for o in listing] == sorted(bodies)
        for name, body in bodies.items():
            headers, got = conn.get_object("photos", name)
            assert got == body
            assert headers["etag"] == hashlib.md5(body).hexdigest()
            assert headers["x-object-meta-node"] == "a"
        account = conn.head_account()
        assert account["x-account-object-count"] == str(len(bodies))

    # The data is in Swift: none of it on the nodes' own disks.
    from swiftclient import client

    swift = client.Connection(swift_cluster.auth_url, "test:tester", "testing",
                              auth_version="1", retries=0)
    headers, _objects = swift.get_container(container)
    assert int(headers["x-container-object-count"]) >= len(bodies)

    # A write through B and a delete through C are seen through A.
    b.connection().put_object("photos", "from-b", b"written through b")
    c.connection().delete_object("photos", "n00")
    names = [o["name"] for o in conn_a.get_container("photos")[1]]
    assert "from-b" in names and "n00" not in names

    # Node C reads through its own object cache.
    result = manage(c, "cache", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout), "node-c cached nothing:\n" + result.stdout
    result = manage(a, "cache", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert not json.loads(result.stdout)


def test_sync_finishes_after_a_worker_is_killed(cluster):
    nodes, target, daemons, _container = cluster
    a, _b, c = nodes
    dst = target.connection()
    dst.put_container("mirror", headers={"X-Container-Sync-Key": SYNC_KEY})
    src = a.connection()
    src.put_container("source", headers={
        "X-Container-Sync-To": "//us/dst/AUTH_test/mirror",
        "X-Container-Sync-Key": SYNC_KEY})
    conns = [node.connection() for node in nodes]
    for i in range(150):
        conns[i % 3].put_object("source", "obj-%03d" % i, b"payload %d" % i)

    for node in nodes:
        daemons.append(Daemon(node, "heartbeat").start())
    syncs = [Daemon(node, "sync").start() for node in nodes]
    daemons.extend(syncs)

    def on_target() -> int:
        return len(dst.get_container("mirror", full_listing=True)[1])

    wait_for(lambda: on_target() > 0, timeout=60,
             what=lambda: "a first object on the target\n" + syncs[0].output())
    # Node B's worker has started (published its record) before it dies.
    wait_for(lambda: "node-b" in _sync_nodes(a), timeout=60,
             what=lambda: "node B's sync worker to start\n" + syncs[1].output())
    syncs[1].kill()
    # More writes while node B's worker is dead (through node B's API).
    for i in range(150, 200):
        conns[1].put_object("source", "obj-%03d" % i, b"payload %d" % i)
    wait_for(lambda: on_target() == 200, timeout=120,
             what=lambda: "200 objects on the target (have %d)\n%s"
             % (on_target(), syncs[0].output() + syncs[2].output()))
    want = {name: row[0] for name, row in snapshot(a, "source").items()}
    got = {name: row[0] for name, row in snapshot(target, "mirror").items()}
    assert got == want

    # Every node of the cluster, seen from any node.
    result = manage(c, "cluster", "members", "--format", "json")
    assert result.returncode == 0, result.stderr
    members = json.loads(result.stdout)["members"]
    assert {m.split(":")[0] for m in members} == set(NODES)
    assert _sync_nodes(a) == set(NODES)


def _sync_nodes(node: NodeApi) -> set[str]:
    """The nodes whose sync worker has a status record, seen from ``node``."""
    result = manage(node, "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {r["node"] for r in json.loads(result.stdout) if r["daemon"] == "sync"}


def test_a_restarted_node_serves_at_once(cluster):
    (a, b, _c), _target, _daemons, _container = cluster
    a.connection().put_container("box")
    a.connection().put_object("box", "thing", b"kept")
    b.kill()
    b.start()
    # The first requests after READY=1 succeed: nothing to rebuild first.
    conn = b.connection()
    assert conn.get_object("box", "thing")[1] == b"kept"
    conn.put_object("box", "after-restart", b"new")
    names = [o["name"] for o in a.connection().get_container("box")[1]]
    assert names == ["after-restart", "thing"]
