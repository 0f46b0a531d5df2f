"""Swift's own functional test suite, run against a real ``storaged-api``.

SPEC §10 makes ``test/functional`` of the ``swift`` sdist the specification
of the object API. ``tox -e swift-functional`` runs it:

1. :mod:`.sdist` downloads the pinned ``swift`` sdist once (into a cache
   directory), unpacks the test suite from it and installs Swift itself
   with ``--no-deps`` (the tests import ``swift.common``);
2. :mod:`.server` writes a storaged configuration (embedded defaults: file
   store, SQLite, ``file://`` coordination) with the users Swift's
   ``test.conf`` names, and starts ``storaged-api`` on a free loopback port;
3. :mod:`.testconf` writes Swift's ``test.conf`` pointing at it;
4. :mod:`.runner` runs ``python -m pytest test/functional`` with a JUnit
   XML report, then the server is stopped (SIGTERM, wait);
5. :mod:`.junit` reads the report into one outcome per test and prints a
   per-file table, and :mod:`.known` checks the failures against
   ``known_failures.txt``: a failure not listed, or an entry that matches
   no test, fails the run.
"""
