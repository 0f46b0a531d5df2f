"""Swift's functional test suite, from the ``swift`` sdist on the registry.

The sdist is downloaded once with pip (``pip download swift==<version>
--no-binary :all: --no-deps``) into a cache directory, and only what the
functional tests need is unpacked beside it::

    <cache>/swift-2.36.0.tar.gz
    <cache>/swift-2.36.0/tox.ini                 Swift's pytest settings
    <cache>/swift-2.36.0/test/__init__.py        get_config(), listen_zero()
    <cache>/swift-2.36.0/test/debug_logger.py
    <cache>/swift-2.36.0/test/unit/__init__.py   FakeMemcache, group_by_byte
    <cache>/swift-2.36.0/test/functional/...     the suite itself

Swift itself is installed from the same sdist with ``--no-deps``: the tests
import ``swift.common`` (constraints, storage policies, swob), whose own
imports the tox environment installs explicitly.
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

#: Files of the sdist the suite needs besides ``test/functional/``.
SUPPORT_FILES = (
    "tox.ini",
    "test/__init__.py",
    "test/debug_logger.py",
    "test/unit/__init__.py",
)
SUITE_DIR = "test/functional/"


def _wanted(relative: str) -> bool:
    return relative in SUPPORT_FILES or relative.startswith(SUITE_DIR)


def download(version: str, cache_dir: str) -> str:
    """Return the path of the ``swift-<version>`` sdist, downloading it once."""
    os.makedirs(cache_dir, exist_ok=True)
    pattern = os.path.join(cache_dir, "swift-%s.tar.gz" % version)
    found = glob.glob(pattern)
    if not found:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet",
                "swift==%s" % version, "--no-binary", ":all:", "--no-deps",
                "--dest", cache_dir,
            ],
            check=True,
        )
        found = glob.glob(pattern)
    if not found:
        raise RuntimeError("pip downloaded no %s" % pattern)
    return found[0]


def unpack(sdist: str, cache_dir: str, version: str) -> str:
    """Unpack the suite from ``sdist`` once; return the tree's root.

    The tree is unpacked into a temporary directory and renamed into place,
    so that an interrupted run never leaves half a suite behind.
    """
    root = os.path.join(cache_dir, "swift-%s" % version)
    if os.path.isdir(os.path.join(root, SUITE_DIR)):
        return root
    prefix = "swift-%s/" % version
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir)
    try:
        with tarfile.open(sdist) as tar:
            members = [
                m for m in tar.getmembers()
                if m.name.startswith(prefix) and _wanted(m.name[len(prefix):])
            ]
            tar.extractall(tmp, members=members, filter="data")
        if not os.path.isdir(os.path.join(tmp, prefix, SUITE_DIR)):
            raise RuntimeError("%s holds no %s" % (sdist, SUITE_DIR))
        os.rename(os.path.join(tmp, prefix), root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def installed_version() -> str | None:
    """Return the version of Swift installed beside this Python, if any."""
    try:
        return importlib.metadata.version("swift")
    except importlib.metadata.PackageNotFoundError:
        return None


def install(sdist: str, version: str) -> None:
    """Install Swift from ``sdist`` without its dependencies, unless it is."""
    if installed_version() == version:
        return
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", sdist],
        check=True,
    )


def prepare(version: str, cache_dir: str) -> str:
    """Download, unpack and install Swift ``version``; return the suite's root."""
    sdist = download(version, cache_dir)
    root = unpack(sdist, cache_dir, version)
    install(sdist, version)
    return root
