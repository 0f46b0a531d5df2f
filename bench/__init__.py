"""Benchmarks of storaged against their anchors; each prints ratios.

Each benchmark is a module run from the repository root, as ``tox -e bench``
does::

    python -m bench.kvs --quick

Run that way, the repository root is on ``sys.path``: a benchmark imports
``storaged`` and what it shares with the functional tests (the private
Redis, etcd and ZooKeeper servers of :mod:`tests.servers`, the
``storaged-api`` process of :mod:`tests.functional.api.apiserver`) without
editing the path.
"""
