"""The session's Swift cluster (tests.swift_cluster) for the tests here."""

from tests.swift_cluster import swift_cluster  # noqa: F401
