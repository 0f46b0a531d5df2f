"""prometheus_client's locks made native, for figures updated from any thread.

Under eventlet a daemon updates its figures from the hub's thread (its
green threads) and from the native threads of ``run_blocking``'s pool (a
state store or object store call that counts what it did) at once.
prometheus_client guards its values (in multiprocess mode one lock for all
of them), its labelled children and its registries with ``threading.Lock``,
which monkey-patching makes green: a green lock that two OS threads wait on
wakes the waiter on the wrong thread's hub, which never runs it, and the
process hangs.  So its modules get native locks, before any metric is made
(this module is imported by every module of :mod:`storaged.metrics` that
makes one).  Each is held for a few statements, never across I/O.
"""

from __future__ import annotations

from prometheus_client import metrics as prom_metrics
from prometheus_client import registry as prom_registry
from prometheus_client import values as prom_values

from storaged import concurrency

for _module in (prom_metrics, prom_registry, prom_values):
    _module.Lock = concurrency.native_lock  # type: ignore[attr-defined]
# A process started with PROMETHEUS_MULTIPROC_DIR set chose its value class
# (and made that class's lock) when prometheus_client was imported.
prom_values.ValueClass = prom_values.get_value_class()
