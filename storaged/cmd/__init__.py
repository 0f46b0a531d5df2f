"""The daemons' entry points (``console_scripts`` and the ``bin/`` shims).

Importing this package chooses the concurrency backend and, for eventlet,
monkey-patches the process, before any other storaged module is imported:
that is why every daemon's command lives in this package.  The operator's
command, ``storaged-manage``, does not: it runs on native threads whatever
the configuration says, and starts without eventlet
(:mod:`storaged.manage.cli`).
"""

from __future__ import annotations

import sys

from storaged import concurrency

concurrency.setup(argv=sys.argv[1:])
