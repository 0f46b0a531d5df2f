"""Fixtures of the object store tests: configurations, stores, HTTP servers."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import os
import ssl

from oslo_config import cfg
import pytest

from storaged.conf import default as default_conf
from storaged.objectstore import backend as store_conf
from storaged.objectstore.drivers import file as file_driver
from storaged.objectstore.drivers import http as http_driver
from tests.unit.objectstore import httpserver


def make_conf(tmp_path, text: str = "") -> cfg.ConfigOpts:
    """Parse ``text`` as a storaged.conf with the object store options."""
    path = tmp_path / "storaged.conf"
    state = tmp_path / "state"
    path.write_text(f"[DEFAULT]\nstate_path = {state}\n" + text)
    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="storaged-test")
    store_conf.register_dynamic_opts(conf)
    return conf


@pytest.fixture
def conf_factory(tmp_path) -> Callable[[str], cfg.ConfigOpts]:
    return lambda text="": make_conf(tmp_path, text)


@pytest.fixture
def file_store_factory(tmp_path) -> Iterator[Callable[..., file_driver.FileStore]]:
    """Build file stores on ``tmp_path``; each call may set options."""
    made: list[file_driver.FileStore] = []

    def build(dirs: str | None = None, **options: object) -> file_driver.FileStore:
        lines = ["[DEFAULT]", "enabled_backends = fs:file", "[fs]"]
        lines.append("data_dirs = %s" % (dirs or tmp_path / "data"))
        lines += [f"{k} = {v}" for k, v in options.items()]
        conf = make_conf(tmp_path, "\n".join(lines) + "\n")
        store = file_driver.FileStore(conf, "fs")
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()


@pytest.fixture
def file_store(file_store_factory) -> file_driver.FileStore:
    return file_store_factory(chunk_size=4096)


@pytest.fixture(scope="module")
def http_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("http-root"))


@pytest.fixture(scope="module")
def http_server(http_root) -> Iterator[httpserver.FileServer]:
    server = httpserver.FileServer(http_root).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    made = httpserver.make_certificate(str(tmp_path_factory.mktemp("tls")))
    if made is None:
        pytest.skip("openssl is not installed")
    return made


@pytest.fixture(scope="module")
def https_server(http_root, tls_files, http_server) -> Iterator[httpserver.FileServer]:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = httpserver.FileServer(http_root, tls=context)
    server.plain_url = http_server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http_store_factory(tmp_path) -> Callable[..., http_driver.HttpStore]:
    def build(**options: object) -> http_driver.HttpStore:
        lines = ["[DEFAULT]", "enabled_backends = web:http", "[web]"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        conf = make_conf(tmp_path, "\n".join(lines) + "\n")
        return http_driver.HttpStore(conf, "web")

    return build


def write_file(root: str, name: str, data: bytes) -> None:
    with open(os.path.join(root, name), "wb") as f:
        f.write(data)
