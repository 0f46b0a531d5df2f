"""A real storaged-api keeps a bounded number of files open under load.

Each request used to open the container's database (three descriptors: the
file, its WAL and its shared memory) and leave the connection to the
garbage collector: under a mixed load one process held over a hundred
handles on the same database and reached systemd's default limit of 1,024
open files, then answered 500 "Too many open files".  Here thousands of
mixed requests (object PUT/GET/HEAD/POST/DELETE, listings, container
PUT/POST/HEAD/DELETE) go to a real server on each concurrency back end,
and the count of its descriptors (``/proc/<pid>/fd``) after them must stay
within a small constant of the count after a warm-up.
"""

from __future__ import annotations

import http.client
import os

import pytest

from tests.functional.api.apiserver import ApiServer

BACKENDS = ["eventlet", "threading"]
WARM_UP = 100
ROUNDS = 400  # 9 requests each: 3,600 requests
#: descriptors the server may open for good after the warm-up (log files,
#: sockets of the native thread pool, the account index...).
SLACK = 16


def open_fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


class Client:
    """Keep-alive HTTP with a token: fast enough for thousands of requests."""

    def __init__(self, server: ApiServer) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        res = self.request("GET", "/auth/v1.0", headers={
            "X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
        assert res[0] == 200, res
        self.token = res[1]["x-auth-token"]
        self.path = res[1]["x-storage-url"].split(str(server.port), 1)[1]

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        res = self.conn.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data

    def __call__(self, method, rel, body=None, headers=None, expect=()):
        all_headers = {"X-Auth-Token": self.token}
        all_headers.update(headers or {})
        status, _, data = self.request(method, self.path + rel, body, all_headers)
        assert status in expect, (method, rel, status, data[:300])
        return status


def mixed_round(client: Client, i: int) -> None:
    c = "c%d" % (i % 4)
    o = "%s/obj-%d" % (c, i % 50)
    client("PUT", "/" + o, body=b"x" * (i % 3000), expect=(201,))
    client("GET", "/" + o, expect=(200,))
    client("HEAD", "/" + o, expect=(200,))
    client("POST", "/" + o, headers={"X-Object-Meta-N": str(i)}, expect=(202,))
    client("GET", "/%s?format=json&limit=20" % c, expect=(200,))
    client("DELETE", "/" + o, expect=(204,))
    tmp = "tmp-%d" % i
    client("PUT", "/" + tmp, expect=(201,))
    client("POST", "/" + tmp, headers={"X-Container-Meta-A": "b"}, expect=(204,))
    client("DELETE", "/" + tmp, expect=(204,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_files_stay_flat(tmp_path, backend):
    with ApiServer(tmp_path, backend=backend) as server:
        # The process that serves (a worker of the launcher's, or itself).
        [pid] = server.serving_pids()
        client = Client(server)
        for c in range(4):
            client("PUT", "/c%d" % c, expect=(201, 202))
        for i in range(WARM_UP):
            mixed_round(client, i)
        start = open_fds(pid)
        counts = []
        for i in range(WARM_UP, WARM_UP + ROUNDS):
            mixed_round(client, i)
            if i % 50 == 0:
                counts.append(open_fds(pid))
        end = open_fds(pid)
        client("GET", "?format=json", expect=(200,))
        assert max([*counts, end]) <= start + SLACK, (backend, start, counts, end)
