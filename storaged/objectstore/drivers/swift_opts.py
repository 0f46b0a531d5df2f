"""Options of the ``swift`` driver, and the parsing of its byte sizes."""

from __future__ import annotations

import re

from oslo_config import cfg

from storaged import exception

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

#: Swift's own limit on one object (``max_file_size``, 5 GiB).
MAX_OBJECT = 5 * GiB

#: Swift's default limit on the segments of one static large object.
MAX_SEGMENTS = 1000

_SIZE = re.compile(r"\s*(\d+)\s*(?:([KMGT])(?:i?B)?)?\s*\Z", re.IGNORECASE)
_UNITS = {"": MiB, "K": KiB, "M": MiB, "G": GiB, "T": 1024 * GiB}

OPTIONS = [
    cfg.URIOpt(
        "auth_url",
        schemes=["http", "https"],
        help="""
Where to authenticate (required).

Possible values:
    * With ``auth_version = 1``: Swift's v1 auth URL, e.g.
      ``https://swift.example.org/auth/v1.0``
    * With ``auth_version = 3``: Keystone's URL, e.g.
      ``https://keystone.example.org:5000/v3`` (``/v3`` is added when missing)

Related options:
    * ``auth_version``, ``user``, ``key``
""",
    ),
    cfg.StrOpt(
        "auth_version",
        default="1",
        choices=[
            ("1", "Swift's v1 auth (tempauth, swauth): X-Auth-User and X-Auth-Key"),
            ("3", "Keystone v3, password method, project-scoped token"),
        ],
        help="""
How to authenticate.

With v3 the storage URL is taken from the token's service catalog
(``service_type``, ``endpoint_type`` and ``region_name`` pick it).

Related options:
    * ``auth_url``, ``project_name``, ``project_domain_name``,
      ``user_domain_name``, ``region_name``, ``endpoint_type``, ``service_type``
""",
    ),
    cfg.StrOpt(
        "user",
        help="""
The user to authenticate as.

Possible values:
    * v1: ``ACCOUNT:USER`` as the auth system expects it (``test:tester``)
    * v3: the user name; ``PROJECT:USER`` also works when ``project_name``
      is unset

Related options:
    * ``key``, ``user_domain_name``
""",
    ),
    cfg.StrOpt(
        "key",
        secret=True,
        help="The user's key (v1) or password (v3). Never logged.",
    ),
    cfg.StrOpt(
        "project_name",
        help="""
v3 only: the project the token is scoped to (whose Swift account holds the
objects).

Related options:
    * ``project_domain_name``, ``auth_version``
""",
    ),
    cfg.StrOpt(
        "project_domain_name",
        default="Default",
        help="v3 only: the domain of ``project_name``.",
    ),
    cfg.StrOpt(
        "user_domain_name",
        default="Default",
        help="v3 only: the domain of ``user``.",
    ),
    cfg.StrOpt(
        "region_name",
        help="""
v3 only: the region whose object-store endpoint is used; unset takes the
first endpoint of the right type in the catalog.
""",
    ),
    cfg.StrOpt(
        "endpoint_type",
        default="publicURL",
        choices=[
            ("publicURL", "the catalog's public interface"),
            ("internalURL", "the catalog's internal interface"),
            ("adminURL", "the catalog's admin interface"),
        ],
        help="v3 only: which interface of the object-store endpoint is used.",
    ),
    cfg.StrOpt(
        "service_type",
        default="object-store",
        help="v3 only: the catalog service type of Swift.",
    ),
    cfg.StrOpt(
        "container",
        default="storaged",
        regex=r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,200}\Z",
        help="""
The container that holds the objects (or the prefix of the containers, with
``container_seed``). Large object segments go to ``<container>_segments``.

Possible values:
    * A name of letters, digits, ``.``, ``_`` and ``-``, at most 201 long

Related options:
    * ``container_seed``, ``create_container_on_put``
""",
    ),
    cfg.IntOpt(
        "container_seed",
        default=0,
        min=0,
        max=32,
        help="""
Spread the objects over several containers (glance_store's
``swift_store_multiple_containers_seed``).

0 puts every object in ``container``. N puts each object in
``<container>_<first N hex digits of the sha256 of its object id>``, i.e.
16**N containers, each with its own ``_segments`` container; use it when one
container would hold many millions of objects. Locations name the container,
so changing it later keeps existing objects readable.

Possible values:
    * 0 to 32; 1 or 2 (16 or 256 containers) for very large stores

Related options:
    * ``container``, ``create_container_on_put``
""",
    ),
    cfg.BoolOpt(
        "create_container_on_put",
        default=True,
        help="""
Create a missing container when an object is added to it (once per
container and process). When off, the containers must exist; an add to a
missing one fails with an error that names it, and ``verify_store`` checks
that ``container`` exists.

Related options:
    * ``container``, ``container_seed``
""",
    ),
    cfg.StrOpt(
        "large_object_size",
        default="5120",
        help="""
Objects larger than this are written as static large objects (SLO):
segments of ``large_object_chunk_size`` in ``<container>_segments``, then a
manifest. Swift refuses single objects above 5 GiB, the maximum.

Possible values:
    * A size: a number of MiB (``5120``), or a number with a unit, ``K``,
      ``M``, ``G`` (binary: ``64K``, ``200M``, ``5G``), from 1K to 5G

Related options:
    * ``large_object_chunk_size``, ``orphan_grace``
""",
    ),
    cfg.StrOpt(
        "large_object_chunk_size",
        default="200",
        help="""
Size of the segments of a large object. Each segment is held in memory
while it is sent (so that it can be sent again after an error), so an add
of a large object uses this much memory. Objects of unknown size (chunked
uploads) are buffered up to this size too, then written as one object when
they end within it, or as a large object.

Possible values:
    * A size as ``large_object_size`` takes it: ``200`` (MiB), ``64K``,
      ``1G``; from 1K to 5G. A large object has at most 1000 segments.

Related options:
    * ``large_object_size``
""",
    ),
    cfg.IntOpt(
        "orphan_grace",
        default=86400,
        min=0,
        help="""
Seconds after which ``scrub --reclaim`` removes the leftovers of an add that
never finished: segments no manifest refers to (a process killed during a
large add), and objects without their recorded digest. Younger ones are
counted as writes in progress. Keep it longer than the longest add.

Related options:
    * ``large_object_size``
""",
    ),
    cfg.IntOpt(
        "retries",
        default=3,
        min=0,
        max=20,
        help="""
Times a failed request is sent again, with exponential backoff (0.25 s,
0.5 s, 1 s, ...), after a 5xx answer (not 507), a 408 or 429, a timeout or a
connection error. Only requests that can be sent again unchanged are
retried: a streamed object body (of a known size between ``chunk_size`` and
``large_object_size``) is sent once; segments and small objects, held in
memory, are retried.
""",
    ),
    cfg.FloatOpt(
        "connect_timeout",
        default=10.0,
        min=0.1,
        max=600.0,
        help="Seconds to wait for a TCP (and TLS) connection to Swift or Keystone.",
    ),
    cfg.FloatOpt(
        "read_timeout",
        default=60.0,
        min=0.1,
        max=3600.0,
        help="""
Seconds to wait for each read from (or write to) Swift, not for the whole
transfer.
""",
    ),
    cfg.StrOpt(
        "https_ca_certificates_file",
        help="""
CA certificates (PEM) used to verify Swift and Keystone over HTTPS, instead
of the system's.

Possible values:
    * An absolute path to a PEM file; unset to use the system CA store

Related options:
    * ``https_insecure``
""",
    ),
    cfg.BoolOpt(
        "https_insecure",
        default=False,
        help="""
DANGEROUS: do not verify HTTPS certificates or host names of Swift and
Keystone. Only for testing; use ``https_ca_certificates_file`` for private
CAs instead.

Related options:
    * ``https_ca_certificates_file``
""",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=MiB,
        min=4096,
        max=64 * MiB,
        help="""
Bytes read from Swift (or from a client's stream) at a time, and the size
of the chunks ``get`` yields. An object of a known size up to this is sent
in one request with its digest; a larger one (up to ``large_object_size``)
is streamed, and its digest recorded by a POST that follows.
""",
    ),
]


def parse_size(text: str, backend_id: str, option: str) -> int:
    """Return the bytes of a size option (``5120`` MiB, ``64K``, ``5G``).

    :raises storaged.exception.ConfigError: unparsable, below 1 KiB or
        above 5 GiB.
    """
    match = _SIZE.match(text or "")
    if not match:
        raise exception.ConfigError(
            f"{text!r} is not a size (a number of MiB, or a number with K, M or G)",
            group=backend_id,
            option=option,
        )
    value = int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]
    if not KiB <= value <= MAX_OBJECT:
        raise exception.ConfigError(
            f"{text!r} is {value} bytes: it must be from 1K to 5G",
            group=backend_id,
            option=option,
        )
    return value
