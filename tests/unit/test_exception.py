"""One exception hierarchy: every class formats, and every class is storaged's."""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import pathlib
import re
import sys

import pytest

import storaged
from storaged import exception

PACKAGE = pathlib.Path(storaged.__file__).resolve().parent


def _module_name(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: Every module of the package, imported: the subclasses of StoragedError
#: below are then all of them, whichever tests ran first.
SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {path: importlib.import_module(_module_name(path)) for path in SOURCES}


def _resolve(node: ast.expr, namespace: dict) -> object:
    """Return what a base class expression (``X``, ``mod.X``) names, or None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        return getattr(owner, node.attr, None)
    return None


def _is_exception(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseException)


def foreign_exceptions(source: str, module: object) -> list[str]:
    """Return the exception classes ``source`` defines outside StoragedError.

    ``module`` is ``source`` imported.  A class at module level (or in a
    class at module level) is looked up and checked with ``issubclass``; a
    class defined in a function cannot be reached, so its bases are resolved
    in the module's namespace instead.

    :returns: ``"<line> <name>"`` for each offender.
    """
    offenders = []

    def visit(node: ast.AST, owner: object, reachable: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                cls = getattr(owner, child.name, None) if reachable else None
                if cls is None:
                    bases = [_resolve(b, vars(module)) for b in child.bases]
                    foreign = any(_is_exception(b) for b in bases) and not any(
                        _is_exception(b) and issubclass(b, exception.StoragedError)
                        for b in bases
                    )
                    visit(child, None, False)
                else:
                    foreign = _is_exception(cls) and not issubclass(
                        cls, exception.StoragedError
                    )
                    visit(child, cls, True)
                if foreign:
                    offenders.append("%d %s" % (child.lineno, child.name))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, None, False)
            else:
                visit(child, owner, reachable)

    visit(ast.parse(source), module, True)
    return offenders


def _load(tmp_path: pathlib.Path, source: str) -> object:
    path = tmp_path / "candidate.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("candidate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("source, expected", [
    ("class A(Exception):\n    pass\n", ["1 A"]),
    ("import http.client\nclass A(http.client.HTTPException):\n    pass\n",
     ["2 A"]),
    ("class A(RuntimeError):\n    pass\nclass B(A):\n    pass\n", ["1 A", "3 B"]),
    ("class O:\n    class A(KeyError):\n        pass\n", ["2 A"]),
    ("def f():\n    class A(ValueError):\n        pass\n    return A\n", ["2 A"]),
    ("from storaged import exception\n"
     "class A(exception.StoragedError, RuntimeError):\n    pass\n"
     "def f():\n    class B(exception.KVSError):\n        pass\n", []),
    ("from typing import Protocol\nclass P(Protocol):\n    pass\n"
     "class Q(dict):\n    pass\n", []),
])
def test_foreign_exceptions_finds_them(tmp_path, source, expected):
    assert foreign_exceptions(source, _load(tmp_path, source)) == expected


def test_every_exception_is_a_storaged_error():
    assert len(SOURCES) > 50    # the walk did find the package
    offenders = []
    for path, module in MODULES.items():
        for found in foreign_exceptions(path.read_text(encoding="utf-8"), module):
            offenders.append("%s:%s" % (path.relative_to(PACKAGE.parent), found))
    assert offenders == [], (
        "derive storaged's exceptions from storaged.exception.StoragedError "
        "(or one of its subclasses)")


def _all_classes(root=exception.StoragedError):
    for cls in root.__subclasses__():
        yield cls
        yield from _all_classes(cls)


CLASSES = sorted(
    {c for c in _all_classes() if c.__module__.split(".")[0] == "storaged"},
    key=lambda c: (c.__module__, c.__name__),
)


def test_classes_come_from_every_part():
    modules = {cls.__module__ for cls in CLASSES}
    assert {"storaged.exception", "storaged.api.protocol",
            "storaged.coordination.heart", "storaged.kvs.base"} <= modules


def test_one_usage_error():
    names = [cls.__name__ for cls in CLASSES]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == []
    manage_cache = sys.modules["storaged.manage.cache"]
    manage_data = sys.modules["storaged.manage.data"]
    assert manage_cache.UsageError is manage_data.UsageError is exception.UsageError


@pytest.mark.parametrize(
    "cls", CLASSES, ids=lambda c: "%s.%s" % (c.__module__, c.__name__))
def test_template_formats(cls):
    from storaged.api import protocol

    if issubclass(cls, exception.ConfigError):
        err = cls("bad value", "/etc/x.conf", "kvs", "timeout")
        assert str(err) == "/etc/x.conf: [kvs] timeout: bad value"
        return
    if issubclass(cls, protocol.HTTPError):
        err = cls(protocol.Response(404))
        assert str(err) == "404 Not Found"
        return
    fields = re.findall(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?([a-z])",
                        cls.msg_fmt)
    kwargs = {
        n: 7 if kind in "di" else 1.5 if kind in "fg" or "timeout" in n else "v"
        for n, kind in fields
    }
    err = cls(**kwargs)
    assert "%(" not in str(err)
    assert isinstance(err, exception.StoragedError)


def test_bad_template_arguments_raise():
    with pytest.raises(KeyError):
        exception.KVSNotFound(name="wrong keyword")


def test_markers():
    assert issubclass(exception.LeaseLost, exception.FatalError)
    assert issubclass(exception.KVSBackendError, exception.RetryableError)
    assert issubclass(exception.ConfigError, exception.FatalError)


def test_former_outsiders_are_still_what_they_were():
    """Joining the hierarchy kept the bases callers may catch them by."""
    import http.client

    from storaged.api import framing
    from storaged.coordination import heart

    assert issubclass(heart.HeartStopped, RuntimeError)
    assert str(heart.HeartStopped(state="stopped")) == (
        "the coordination heartbeat thread stopped")
    assert issubclass(framing.HeadersTooLarge, http.client.HTTPException)


def test_an_http_error_is_its_own_answer():
    from storaged.api import errors
    from storaged.api import protocol

    err = protocol.error(412, "no")
    assert isinstance(err, exception.StoragedError)
    assert errors.to_http(err) is err
    assert errors.status_for(err) == 412
    assert str(err) == "412 Precondition Failed"
