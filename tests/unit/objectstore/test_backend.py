"""Multi-backend configuration: every start-up failure is one clear error."""

from __future__ import annotations

import io
import os

from oslo_config import cfg
import pytest

from storaged import exception
from storaged import objectstore
from storaged import opts as storaged_opts
from storaged.common import config as common_config
from storaged.objectstore import Capability
from storaged.objectstore import backend
from storaged.objectstore.drivers.file import FileStore
from storaged.objectstore.drivers.http import HttpStore
from tests.unit.objectstore.conftest import make_conf


def _load_error(tmp_path, text: str) -> exception.ConfigError:
    with pytest.raises(exception.ConfigError) as info:
        conf = make_conf(tmp_path, text)
        objectstore.load_backends(conf)
    return info.value


# (configuration text, group, option, words of the problem)
BAD = [
    ("[DEFAULT]\nenabled_backends = fast\n", "DEFAULT", "enabled_backends",
     "malformed entry 'fast': expected ID:TYPE"),
    ("[DEFAULT]\nenabled_backends = :file\n", "DEFAULT", "enabled_backends",
     "malformed entry ':file'"),
    ("[DEFAULT]\nenabled_backends = fast:\n", "DEFAULT", "enabled_backends",
     "malformed entry 'fast:'"),
    ("[DEFAULT]\nenabled_backends = a:file:x\n", "DEFAULT", "enabled_backends",
     "malformed entry 'a:file:x'"),
    ("[DEFAULT]\nenabled_backends =\n", "DEFAULT", "enabled_backends",
     "no back end is enabled"),
    ("[DEFAULT]\nenabled_backends = 1st:file\n", "DEFAULT", "enabled_backends",
     "must start with a letter"),
    ("[DEFAULT]\nenabled_backends = my.store:file\n", "DEFAULT", "enabled_backends",
     "must start with a letter and contain only"),
    ("[DEFAULT]\nenabled_backends = %s:file\n" % ("x" * 65), "DEFAULT",
     "enabled_backends", "longer than 64 characters"),
    ("[DEFAULT]\nenabled_backends = a:file, b:file, a:http\n", "DEFAULT",
     "enabled_backends", "back end id 'a' is listed twice"),
    ("[DEFAULT]\nenabled_backends = a:nfs\n", "DEFAULT", "enabled_backends",
     "unknown back end type 'nfs' (known: file, http, s3, swift)"),
    ("[DEFAULT]\nenabled_backends = store:file\n", "DEFAULT", "enabled_backends",
     "back end id 'store' clashes with the [store] section"),
    ("[DEFAULT]\nenabled_backends = state_path:file\n", "DEFAULT", "enabled_backends",
     "clashes"),
    ("[DEFAULT]\nenabled_backends = DEFAULT:file\n", "DEFAULT", "enabled_backends",
     "clashes"),
    ("[DEFAULT]\nenabled_backends = a:file\n[store]\ndefault_backend = b\n", "store",
     "default_backend", "'b' is not in [DEFAULT] enabled_backends (enabled: a)"),
    ("[DEFAULT]\nenabled_backends = a:file, b:file\n", "store", "default_backend",
     "must be set when 2 back ends that are not reserved are enabled (a, b)"),
    ("[DEFAULT]\nenabled_backends = a:file\n[store]\nreserved_backends = a\n",
     "store", "default_backend", "must be set when no back ends"),
    ("[DEFAULT]\nenabled_backends = a:file, b:file\n[store]\ndefault_backend = a\n"
     "reserved_backends = b, c\n", "store", "reserved_backends",
     "'c' is not in [DEFAULT] enabled_backends"),
    ("[DEFAULT]\nenabled_backends = a:file, b:file\n[store]\ndefault_backend = b\n"
     "reserved_backends = b\n", "store", "default_backend",
     "'b' is a reserved back end and cannot be the default"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs =\n", "a", "data_dirs",
     "no data directory"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = objects\n", "a",
     "data_dirs", "'objects' is not an absolute path"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv/x:high\n", "a",
     "data_dirs", "bad priority 'high' in '/srv/x:high'"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv/x:1.5\n", "a",
     "data_dirs", "bad priority '1.5'"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv/x:1, /srv/x/:2\n",
     "a", "data_dirs", "'/srv/x' is listed twice"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv/x, /srv/x/y\n",
     "a", "data_dirs", "contain each other"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv/x, ,/srv/y\n",
     "a", "data_dirs", "empty entry"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /\n", "a", "data_dirs",
     "the root directory"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv\n[a]\n"
     "file_mode = rw-r-----\n", "a", "file_mode", "not an octal file mode"),
    ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = /srv\nfile_mode = 0200\n",
     "a", "file_mode", "does not let the owner read"),
    ("[DEFAULT]\nenabled_backends = a:file, w:http\n[store]\ndefault_backend = a\n"
     "[w]\nhttps_insecure = true\nhttps_ca_certificates_file = /etc/ssl/ca.pem\n",
     "w", "https_ca_certificates_file", "while https_insecure is on"),
    ("[DEFAULT]\nenabled_backends = w:http\n[w]\nallowed_url_prefixes = /files/\n",
     "w", "allowed_url_prefixes", "is not an http:// or https:// URL prefix"),
]


@pytest.mark.parametrize(("text", "group", "option", "words"), BAD)
def test_bad_configuration_is_one_error_naming_group_and_option(
    tmp_path, text, group, option, words
):
    err = _load_error(tmp_path, text)
    assert (err.group, err.option) == (group, option)
    assert words in err.problem
    assert f"[{group}] {option}: " in str(err)
    # validate_conf (for prepare_service) finds the same problem.
    with pytest.raises(exception.ConfigError) as info:
        objectstore.validate_conf(make_conf(tmp_path, text), None)
    assert (info.value.group, info.value.option, info.value.problem) == (
        group,
        option,
        err.problem,
    )


def test_validate_conf_touches_nothing(tmp_path):
    conf = make_conf(tmp_path, f"[DEFAULT]\nenabled_backends = a:file\n[a]\n"
                               f"data_dirs = {tmp_path}/new\n")
    objectstore.validate_conf(conf, None)
    assert not (tmp_path / "new").exists()
    objectstore.load_backends(conf)
    assert (tmp_path / "new" / ".layout").exists()


def test_missing_data_dir_when_creation_is_off(tmp_path):
    err = _load_error(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = {tmp_path}/mnt/disk\n"
        "create_data_dirs = false\n",
    )
    assert (err.group, err.option) == ("a", "data_dirs")
    assert (
        "does not exist (create_data_dirs is off: is its disk mounted?)" in err.problem
    )


def test_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    err = _load_error(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = {tmp_path}/etc\n",
    )
    assert (err.group, err.option) == ("a", "data_dirs")
    assert "is not empty and was not created by storaged" in err.problem
    assert os.listdir(tmp_path / "etc") == ["passwd"]


def test_the_root_of_a_fresh_filesystem_is_accepted(tmp_path):
    (tmp_path / "mnt" / "lost+found").mkdir(parents=True)
    conf = make_conf(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = {tmp_path}/mnt\n",
    )
    store = objectstore.load_backends(conf).get("a")
    assert store.scrub().clean


def test_unknown_layout_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".layout").write_text('{"format": 9}')
    err = _load_error(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = {tmp_path}/d\n",
    )
    assert "has layout" in err.problem and err.option == "data_dirs"


def test_data_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    err = _load_error(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = {tmp_path}/file/sub\n",
    )
    assert (err.group, err.option) == ("a", "data_dirs")
    assert "cannot use data directory" in err.problem


# -- the registry ------------------------------------------------------------------


def test_embedded_default_works_out_of_the_box(tmp_path):
    conf = make_conf(tmp_path)
    backends = objectstore.load_backends(conf)
    assert backends.ids() == ["local"]
    assert backends.default_id == "local"
    store = backends.default
    assert isinstance(store, FileStore)
    assert store.data_dirs == [str(tmp_path / "state" / "objects")]
    result = store.add("first", io.BytesIO(b"hello"))
    assert b"".join(store.get(result.location, verify=True)[0]) == b"hello"
    assert backends.verify_all() == {"local": None}


MULTI = """
[DEFAULT]
enabled_backends = fast:file, slow:file, web:http, staging:file
[store]
default_backend = slow
reserved_backends = staging
[fast]
data_dirs = {tmp}/fast
weight = 50
description = NVMe
[slow]
data_dirs = {tmp}/slow:10, {tmp}/slow2:5
weight = 10
[staging]
data_dirs = {tmp}/staging
weight = 99
"""


@pytest.fixture
def multi(tmp_path):
    conf = make_conf(tmp_path, MULTI.format(tmp=tmp_path))
    return conf, objectstore.load_backends(conf)


def test_registry(multi):
    conf, backends = multi
    assert len(backends) == 4
    assert backends.ids() == ["fast", "slow", "web"]
    assert backends.ids(include_reserved=True) == ["fast", "slow", "web", "staging"]
    assert list(backends) == ["fast", "slow", "web"]
    assert "staging" in backends and "nope" not in backends
    assert backends.default_id == "slow"
    assert backends.default is backends.get("slow")
    assert isinstance(backends.get("web"), HttpStore)
    assert backends.type("web") == "http"
    assert backends.is_reserved("staging") and not backends.is_reserved("fast")
    assert conf.fast.description == "NVMe"
    with pytest.raises(exception.UnknownBackend):
        backends.get("nope")
    with pytest.raises(exception.UnknownBackend):
        backends.weight("nope")


def test_reusable_drivers_are_built_once(multi):
    _, backends = multi
    for backend_id in backends.ids(include_reserved=True):
        driver = backends.get(backend_id)
        assert Capability.REUSABLE in driver.capabilities
        assert backends.get(backend_id) is driver


def test_weights_from_memory_and_reloadable(multi):
    conf, backends = multi
    assert [backends.weight(i) for i in ("fast", "slow", "web", "staging")] == [
        50, 10, 0, 99,
    ]
    assert backends.get_store_weight("fast") == 50
    conf.set_override("weight", -5, group="fast")
    assert backends.weight("fast") == -5


def test_order_by_weight(multi):
    _, backends = multi
    ids = ["web", None, "slow", "unknown", "fast", "staging", "web"]
    # highest first; ties (web, None, unknown, staging, web = 0) keep their order
    assert backends.order(ids) == [
        "fast", "slow", "web", None, "unknown", "staging", "web",
    ]


def test_each_back_end_has_its_own_options(multi, tmp_path):
    conf, backends = multi
    assert backends.get("slow").data_dirs == [f"{tmp_path}/slow", f"{tmp_path}/slow2"]
    assert conf.web.max_redirects == 5
    with pytest.raises(cfg.NoSuchOptError):
        conf.fast.max_redirects  # noqa: B018


class _Fresh(FileStore):
    """A driver that must be built for every call."""

    CAPABILITIES = FileStore.CAPABILITIES & ~Capability.REUSABLE
    built = 0

    def __init__(self, conf, backend_id):
        type(self).built += 1
        super().__init__(conf, backend_id)


def test_non_reusable_driver_is_built_per_lookup(tmp_path):
    conf = make_conf(tmp_path, "[DEFAULT]\nenabled_backends = a:file\n")
    specs = [backend.BackendSpec("a", "file")]
    backends = backend.Backends(conf, specs, "a", {"a": _Fresh}, {})
    first, second = backends.get("a"), backends.get("a")
    assert first is not second
    assert _Fresh.built == 2


def test_register_dynamic_opts_is_idempotent(tmp_path):
    conf = make_conf(tmp_path, "[DEFAULT]\nenabled_backends = a:file, b:http\n"
                               "[store]\ndefault_backend = a\n")
    backend.register_dynamic_opts(conf)
    backend.register_dynamic_opts(conf)
    objectstore.load_backends(conf)


# -- prepare_service ---------------------------------------------------------------


@pytest.fixture
def with_store_module(monkeypatch):
    """prepare_service as it runs once the store options are in MODULES."""
    modules = storaged_opts.MODULES
    if backend not in modules:
        monkeypatch.setattr(storaged_opts, "MODULES", (*modules, backend))


def _prepare(tmp_path, text: str):
    path = tmp_path / "storaged.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}/state\n" + text)
    return common_config.prepare_service(
        ["--config-file", str(path)],
        prog="storaged-test",
        setup_logging=False,
        validators=[objectstore.validate_conf],
    ), str(path)


@pytest.mark.usefixtures("with_store_module")
@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[DEFAULT]\nenabled_backends = a:file\n[a]\ndata_dirs = rel\n",
         "F: [a] data_dirs: 'rel' is not an absolute path"),
        ("[DEFAULT]\nenabled_backends = a:nfs\n",
         "F: [DEFAULT] enabled_backends: unknown back end type 'nfs' (known: file, "
         "http, s3"),
        ("[DEFAULT]\nenabled_backends = a:file\n[a]\nweight = heavy\n",
         "F: [a] weight: invalid literal for int() with base 10: 'heavy'"),
        ("[DEFAULT]\nenabled_backends = a:file\n[a]\nmax_redirects = 3\n",
         "F: [a] max_redirects: unknown option"),
        ("[DEFAULT]\nenabled_backends = a:file\n[b]\ndata_dirs = /x\n",
         "F: [b]: unknown section"),
        ("[DEFAULT]\nenabled_backends = a:file\n[store]\ndefault_backend = z\n",
         "F: [store] default_backend: 'z' is not in [DEFAULT] enabled_backends "
         "(enabled: a)"),
    ],
)
def test_prepare_service_names_the_file(tmp_path, text, line):
    with pytest.raises(exception.ConfigError) as info:
        _prepare(tmp_path, text)
    message = str(info.value).replace(str(tmp_path / "storaged.conf"), "F")
    assert message.startswith(line)


@pytest.mark.usefixtures("with_store_module")
def test_prepare_service_accepts_a_good_file(tmp_path):
    conf, _ = _prepare(
        tmp_path,
        f"[DEFAULT]\nenabled_backends = a:file, w:http\n[store]\ndefault_backend = a\n"
        f"[a]\ndata_dirs = {tmp_path}/a:5\nweight = 3\n[w]\nread_timeout = 5\n",
    )
    backends = objectstore.load_backends(conf)
    assert (backends.weight("a"), conf.w.read_timeout) == (3, 5.0)


# -- sample configuration ----------------------------------------------------------


def test_list_opts():
    listed = backend.list_opts()
    names = [getattr(g, "name", g) for g, _ in listed]
    assert names == [None, "store", "file", "http", "s3", "swift"]
    opts = {getattr(g, "name", g): [o.name for o in group] for g, group in listed}
    assert opts[None] == ["enabled_backends"]
    assert opts["store"] == ["default_backend", "reserved_backends"]
    assert opts["file"] == [
        "weight", "description", "cache", "data_dirs", "create_data_dirs",
        "chunk_size", "file_mode", "metadata_store", "free_space_ttl",
        "fallocate_reserve", "reclaim_age",
    ]
    assert opts["http"] == [
        "weight", "description", "cache", "connect_timeout", "read_timeout",
        "max_redirects",
        "https_ca_certificates_file", "https_insecure", "allowed_url_prefixes",
        "chunk_size",
    ]
    assert opts["swift"] == [
        "weight", "description", "cache", "auth_url", "auth_version", "user",
        "key", "project_name", "project_domain_name", "user_domain_name",
        "region_name", "endpoint_type", "service_type", "container",
        "container_seed", "create_container_on_put", "large_object_size",
        "large_object_chunk_size", "orphan_grace", "retries", "connect_timeout",
        "read_timeout", "https_ca_certificates_file", "https_insecure",
        "chunk_size",
    ]
    file_group = listed[2][0]
    assert "e.g. ``[fast]`` for ``enabled_backends = fast:file``" in file_group.help
    for _, group in listed:
        for opt in group:
            assert opt.help and len(opt.help) > 20, opt.name
