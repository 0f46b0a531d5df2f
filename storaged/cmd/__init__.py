"""Command entry points (``console_scripts`` and the ``bin/`` shims).

Importing this package chooses the concurrency backend and, for eventlet,
monkey-patches the process, before any other storaged module is imported:
that is why every command lives in this package.
"""

from __future__ import annotations

import sys

from storaged import concurrency

concurrency.setup(argv=sys.argv[1:])
