"""Layering rules that hold across the package."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from storaged import concurrency
from storaged.api import greenhttp

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "storaged"
#: The only module allowed to import eventlet.
EVENTLET_HOME = PACKAGE / "concurrency.py"


def _is_eventlet(name: str | None) -> bool:
    return name is not None and (name == "eventlet" or name.startswith("eventlet."))


def eventlet_imports(source: str) -> list[int]:
    """Return the line numbers where ``source`` imports eventlet.

    Counts ``import eventlet[.x]``, ``from eventlet[.x] import ...`` and
    ``importlib.import_module("eventlet...")`` / ``__import__("eventlet...")``
    with a literal name, wherever they are (module level or in a function).
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            if any(_is_eventlet(alias.name) for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and _is_eventlet(node.module):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(
                func, "id", None)
            first = node.args[0]
            if (name in ("import_module", "__import__")
                    and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and _is_eventlet(first.value)):
                lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("source, expected", [
    ("import eventlet\n", [1]),
    ("import os, eventlet.wsgi as w\n", [1]),
    ("def f():\n    from eventlet import tpool\n", [2]),
    ("from eventlet.green import socket\n", [1]),
    ("import importlib\nimportlib.import_module('eventlet.wsgi')\n", [2]),
    ("__import__('eventlet')\n", [1]),
    ("import eventlets\nfrom .eventlet import x\nfrom storaged import concurrency\n",
     []),
    ("# import eventlet\nx = 'from eventlet import wsgi'\n", []),
])
def test_eventlet_imports_finds_every_form(source, expected):
    assert eventlet_imports(source) == expected


def test_only_concurrency_imports_eventlet():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert EVENTLET_HOME in modules
    assert len(modules) > 50    # the walk did find the package
    offenders = []
    for path in modules:
        if path == EVENTLET_HOME:
            continue
        for line in eventlet_imports(path.read_text(encoding="utf-8")):
            offenders.append("%s:%d" % (path.relative_to(ROOT), line))
    assert offenders == [], (
        "only storaged/concurrency.py may import eventlet; ask it for what "
        "you need instead")


def test_eventlet_server_pieces_refuse_the_threading_backend(monkeypatch):
    monkeypatch.setattr(concurrency, "_backend", concurrency.THREADING)
    with pytest.raises(RuntimeError, match="eventlet backend"):
        concurrency.eventlet_wsgi()
    with pytest.raises(RuntimeError, match="eventlet backend"):
        concurrency.green_wsgi_server(
            None, lambda environ, start: [], protocol=object, max_clients=1,
            max_line=8192, socket_timeout=1.0, log=None)
    greenhttp._classes.cache_clear()
    with pytest.raises(RuntimeError, match="eventlet backend"):
        greenhttp.protocol(144.0, 8192)


def test_greenhttp_builds_on_eventlets_classes():
    code = r"""
from storaged import concurrency
concurrency.setup("eventlet")
import eventlet.wsgi
from storaged.api import greenhttp
proto = greenhttp.protocol(144.0, 4096)
again = greenhttp.protocol(100.0, 8192)
strict_input, strict_protocol = greenhttp._classes()
assert issubclass(proto, eventlet.wsgi.HttpProtocol)
assert issubclass(strict_input, eventlet.wsgi.Input)
assert proto.__mro__[1] is again.__mro__[1] is strict_protocol
assert (proto.max_header_count, proto.max_header_line, proto.max_line) == (
    144.0, 4096, 4096)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok"]
