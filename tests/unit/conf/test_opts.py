"""The option list is pinned, and the shipped sample config matches the code."""

from __future__ import annotations

import os

from oslo_config import generator

from storaged import opts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# Adding, removing or renaming an option is an operator-visible change: update
# this list, the sample config (tox -e genconfig) and the docs together.
EXPECTED = {
    "DEFAULT": ["concurrency_backend", "enabled_backends", "node_id", "state_path"],
    "catalog": [
        "backend_url", "fallocate_reserve",
        "max_account_name_length", "max_container_name_length", "max_meta_count",
        "max_meta_name_length", "max_meta_overall_size", "max_meta_value_length",
        "max_object_name_length", "path", "reclaim_age", "synchronous", "timeout",
    ],
    "daemon": ["publish_status", "stop_timeout"],
    "file": [
        "cache", "chunk_size", "create_data_dirs", "data_dirs", "description",
        "fallocate_reserve", "file_mode",
        "free_space_ttl", "metadata_store", "reclaim_age", "weight",
    ],
    "http": [
        "allowed_url_prefixes", "cache", "chunk_size", "connect_timeout",
        "description",
        "https_ca_certificates_file", "https_insecure", "max_redirects",
        "read_timeout", "weight",
    ],
    "s3": [
        "access_key", "addressing_style", "bucket", "cache", "chunk_size",
        "connect_timeout", "create_bucket_on_put", "description", "endpoint_url",
        "https_ca_certificates_file", "https_insecure", "max_concurrency",
        "multipart_chunk_size", "multipart_threshold", "orphan_grace",
        "read_timeout", "region_name", "request_checksum_calculation", "retries",
        "secret_key", "weight",
    ],
    "swift": [
        "auth_url", "auth_version", "cache", "chunk_size", "connect_timeout",
        "container", "container_seed", "create_container_on_put", "description",
        "endpoint_type", "https_ca_certificates_file", "https_insecure", "key",
        "large_object_chunk_size", "large_object_size", "orphan_grace",
        "project_domain_name", "project_name", "read_timeout", "region_name",
        "retries", "service_type", "user", "user_domain_name", "weight",
    ],
    "store": ["default_backend", "reserved_backends"],
    "kvs": ["backend_url", "default_lock_ttl", "sqlite_synchronous", "timeout"],
    "cache": [
        "cache_dir", "clean_interval", "fill_wait_timeout", "invalid_grace",
        "low_watermark", "max_size", "metadata_store", "metrics_port",
        "min_free_space", "prefetch_interval", "prune_interval", "shared_dir",
        "stall_time",
    ],
    "coordination": [
        "backend_url", "file_single_host", "heartbeat_interval",
        "initial_reconnect_backoff", "lock_timeout", "lock_ttl",
        "max_reconnect_backoff", "membership_ttl", "outage_log_interval",
        "partitions", "settle_time",
    ],
    "heartbeat": ["group", "metrics_port", "publish_interval"],
    "api": [
        "bind_host", "bind_port", "chunk_size",
        "client_timeout", "max_clients", "max_object_size", "max_url_length",
        "metrics_port",
        "public_url", "shutdown_timeout", "token_secret",
        "token_ttl", "verify_reads", "workers",
    ],
    "sync": [
        "allowed_sync_hosts", "batch_size", "concurrency", "container_time",
        "group", "interval", "max_failures", "metrics_file", "metrics_port",
        "realms_conf",
        "report_interval", "request_timeout", "sync_proxy",
    ],
    "expirer": ["batch_size", "concurrency", "group", "interval", "metrics_port"],
    "metrics": [
        "bind_host", "statsd_host", "statsd_port", "statsd_prefix", "textfile_dir",
    ],
}


def _names():
    result: dict[str, list[str]] = {}
    for group, group_opts in opts.list_opts():
        name = "DEFAULT" if group is None else getattr(group, "name", group)
        result.setdefault(name, []).extend(o.name for o in group_opts)
    return {k: sorted(v) for k, v in result.items()}


def test_option_list_is_pinned():
    assert _names() == EXPECTED


def test_every_option_has_help():
    for _group, group_opts in opts.list_opts():
        for opt in group_opts:
            assert opt.help and len(opt.help.strip()) > 20, opt.name


def test_sample_config_is_current(tmp_path):
    out = tmp_path / "storaged.conf.sample"
    generator.main([
        "--config-file",
        os.path.join(ROOT, "etc", "oslo-config-generator", "storaged.conf"),
        "--output-file", str(out),
    ])
    shipped = os.path.join(ROOT, "etc", "storaged", "storaged.conf.sample")
    with open(shipped) as f:
        expected = f.read()
    assert out.read_text() == expected, (
        "etc/storaged/storaged.conf.sample is stale: run 'tox -e genconfig'"
    )
