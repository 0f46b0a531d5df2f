"""Paths answered as Swift's proxy answers them (``split_path`` and controllers)."""

from __future__ import annotations

import pytest

from storaged.api import routes
from storaged.api.protocol import HTTPError
from storaged.catalog import Limits


def status_of(path):
    try:
        routes.route(path, Limits())
    except HTTPError as err:
        return err.response.status, err.response.body
    return 200, b""


@pytest.mark.parametrize("path", ["/v1", "/v1/", "/v2", "/anything"])
def test_no_account_is_412_bad_url(path):
    assert status_of(path) == (412, b"Bad URL")


@pytest.mark.parametrize("path", ["/", "//v1/AUTH_a", "///v1/AUTH_a",
                                  "/v1//c", "/v1/a//o", "/v1/a//", "v1/a"])
def test_what_split_path_refuses_is_404(path):
    assert status_of(path)[0] == 404


@pytest.mark.parametrize("path", ["/v2/a", "/v2/a/c"])
def test_an_unknown_version_with_an_account_is_400(path):
    assert status_of(path)[0] == 400


@pytest.mark.parametrize("path,kind", [
    ("/v1/a", routes.ACCOUNT), ("/v1/a/", routes.ACCOUNT),
    ("/v1/a/c", routes.CONTAINER), ("/v1/a/c/", routes.CONTAINER),
    ("/v1/a/c/o/p", routes.OBJECT), ("/v1.0/a/c/o", routes.OBJECT),
])
def test_good_paths(path, kind):
    assert routes.route(path, Limits()).kind == kind
