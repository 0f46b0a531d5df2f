"""Every exception's message template formats with the arguments it names."""

from __future__ import annotations

import re

import pytest

from storaged import exception


def _all_classes(root=exception.StoragedError):
    for cls in root.__subclasses__():
        yield cls
        yield from _all_classes(cls)


CLASSES = sorted(set(_all_classes()), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_template_formats(cls):
    if issubclass(cls, exception.ConfigError):
        err = cls("bad value", "/etc/x.conf", "kvs", "timeout")
        assert str(err) == "/etc/x.conf: [kvs] timeout: bad value"
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
