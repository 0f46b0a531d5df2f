"""The catalog on PostgreSQL: one set of tables shared by every node.

``[catalog] backend_url = postgresql://USER@HOST/DATABASE?schema=NAME``
(see :mod:`.url`) puts the container catalog in PostgreSQL, so that every
storaged node of a cluster sees the same containers, objects, change logs
and sync points.  The semantics are the sqlite driver's
(:mod:`storaged.catalog`), proven by the same contract suite
(``tests/unit/catalog``); what differs:

* the account index is the ``containers`` table itself, changed in the
  same transaction as the container: it never lags;
* damage is PostgreSQL's to detect: a failing statement is a clear
  :class:`~storaged.exception.CatalogError`, nothing is quarantined;
* space is the server's: :meth:`PostgresCatalog.require_space` checks
  nothing, a full server fails the write;
* ``[catalog] synchronous = normal`` turns ``synchronous_commit`` off.

Modules:

* :mod:`.url`: the URL, its schema (default ``storaged_catalog``);
* :mod:`.schema`: the tables, made on first use, and their version;
* :mod:`.connection`: the pool, transactions, retries, errors;
* :mod:`.container`: a container (row ids in commit order: read its
  docstring);
* :mod:`.account`: an account's metadata;
* :mod:`.catalog`: the catalog, the account index, reclaim.

The sqlite driver stays where it always was (``storaged.catalog.store``,
``broker`` and its parts): moving it into a package of its own would
change every import of every caller and the import contracts for nothing.
Both drivers answer to :mod:`storaged.catalog.interface`; callers open one
with :func:`storaged.catalog.factory.open_catalog`.

Every call is blocking I/O: callers in green threads use
:func:`storaged.concurrency.run_blocking`, as with sqlite.
"""

from __future__ import annotations

from storaged.catalog.postgresql.account import PostgresAccountBroker
from storaged.catalog.postgresql.catalog import PostgresCatalog
from storaged.catalog.postgresql.container import PostgresContainerBroker

__all__ = ["PostgresAccountBroker", "PostgresCatalog", "PostgresContainerBroker"]
