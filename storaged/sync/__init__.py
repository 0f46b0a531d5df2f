"""Container sync: Swift's container-to-container sync, on the wire with Swift.

* :mod:`storaged.sync.realms` reads ``container-sync-realms.conf``, signs
  and verifies requests, parses ``X-Container-Sync-To``; the API server uses
  it to receive sync requests, the sync daemon to send them;
* :mod:`storaged.sync.client` is the daemon's HTTP client (persistent
  connections, timeouts, proxies) speaking the protocol to one target;
* :mod:`storaged.sync.engine` turns a container's change log into requests,
  many rows in flight, and keeps the two sync points per worker;
* :mod:`storaged.sync.daemon` is the ``storaged-sync`` worker: one pass
  over every container that syncs, progress in the state store, metrics.

See ``docs/sync.rst``.
"""
