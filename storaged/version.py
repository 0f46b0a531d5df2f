"""The installed version of storaged."""

from __future__ import annotations

from importlib import metadata


def version_string() -> str:
    """Return the installed package version, or ``unknown`` from a bare tree."""
    try:
        return metadata.version("storaged")
    except metadata.PackageNotFoundError:
        return "unknown"
