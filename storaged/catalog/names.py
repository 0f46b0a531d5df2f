"""Validation of account, container and object names and of metadata.

The rules are Swift's (``swift.common.constraints``), so that whatever a
Swift cluster accepts can be synced into storaged and back:

* every name is text that encodes to UTF-8: ``bytes`` must be valid UTF-8,
  ``str`` must not hold lone surrogates (``'\\udcff'`` is how Python smuggles
  an undecodable byte);
* no NUL anywhere;
* not empty, and not longer than a limit counted in UTF-8 **bytes**
  (account 256, container 256, object 1024 by default);
* account and container names have no ``/`` and are neither ``.`` nor
  ``..`` (they are path segments of ``/v1/<account>/<container>/<object>``);
* object names may hold ``/`` (pseudo-directories) and any other character.

Names never become file names: the catalog stores a container under a hash
of ``account/container``.  The checks keep the database and the wire
protocol sane, not the file system.

Metadata (account and container metadata, an object's headers) are header
names and values: names are HTTP tokens, values have no NUL, CR or LF.  The
entries whose name starts with the user prefix (``X-Account-Meta-``,
``X-Container-Meta-``, ``X-Object-Meta-``) also obey Swift's user metadata
limits: name (after the prefix) at most 128 bytes, value at most 256 bytes,
at most 90 entries and 4096 bytes of names and values together.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
import re
from typing import Final

from storaged import exception

#: User metadata prefixes, in the canonical case :func:`canonical_key` gives.
ACCOUNT_META_PREFIX: Final = "X-Account-Meta-"
CONTAINER_META_PREFIX: Final = "X-Container-Meta-"
OBJECT_META_PREFIX: Final = "X-Object-Meta-"

#: Longest metadata key and value, in bytes, whatever the key (Swift's
#: ``MAX_HEADER_SIZE`` is 8192 for a whole header line).
MAX_KEY_BYTES: Final = 256
MAX_VALUE_BYTES: Final = 8192

# An HTTP token (RFC 9110 field-name), which is what a header name may be.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits on names and metadata, Swift's defaults.

    Every length is in bytes of UTF-8.
    """

    max_account_name_length: int = 256
    max_container_name_length: int = 256
    max_object_name_length: int = 1024
    max_meta_name_length: int = 128
    max_meta_value_length: int = 256
    max_meta_count: int = 90
    max_meta_overall_size: int = 4096


DEFAULT_LIMITS: Final = Limits()


def _show(value: object) -> str:
    """A short, printable rendering of a rejected value for a message."""
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_text(value: str | bytes, kind: str, show: bool = True) -> str:
    """Return ``value`` as ``str`` after checking it is valid UTF-8 text.

    :param value: ``str`` (no lone surrogates) or ``bytes`` (valid UTF-8).
    :param kind: what the value is, for the message (``"object name"``).
    :param show: quote the value in the message; False for values that
        may be secrets (metadata values such as a sync key).
    :raises storaged.exception.InvalidName: not text, not UTF-8, or has NUL.
    """
    shown = _show(value) if show else "the value"
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise exception.InvalidName(
                kind=kind,
                reason=f"{shown} is not valid UTF-8 (byte {err.start})",
            ) from err
    elif isinstance(value, str):
        text = value
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise exception.InvalidName(
                kind=kind,
                reason=f"{shown} holds a lone surrogate at {err.start}, "
                "not valid UTF-8",
            ) from err
    else:
        raise exception.InvalidName(
            kind=kind, reason=f"must be text, not {type(value).__name__}"
        )
    if "\x00" in text:
        raise exception.InvalidName(kind=kind, reason=f"{shown} holds NUL")
    return text


def _check_raw_text(value: str, kind: str) -> str:
    """Check text that may carry non-UTF-8 bytes as ``surrogateescape``."""
    if not isinstance(value, str):
        raise exception.InvalidName(
            kind=kind, reason=f"must be text, not {type(value).__name__}"
        )
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as err:
        raise exception.InvalidName(
            kind=kind, reason=f"the value holds a lone surrogate at {err.start}"
        ) from err
    if "\x00" in value:
        raise exception.InvalidName(kind=kind, reason="the value holds NUL")
    return value


def dump_metadata(metadata: Mapping[str, str]) -> str:
    """Return metadata as the JSON text a catalog row keeps.

    UTF-8 text as it is; metadata carrying bytes that are not UTF-8 (lone
    surrogates, see :func:`validate_metadata`) as ASCII JSON, whose
    ``\\udcXX`` escapes load back to the same surrogates.
    """
    text = json.dumps(metadata, sort_keys=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(metadata, sort_keys=True)
    return text


def _check_name(value: str | bytes, kind: str, max_bytes: int, segment: bool) -> str:
    text = check_text(value, kind)
    if not text:
        raise exception.InvalidName(kind=kind, reason="must not be empty")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise exception.InvalidName(
            kind=kind,
            reason=f"{_show(text)} is {size} bytes long, the limit is {max_bytes}",
        )
    if segment:
        if "/" in text:
            raise exception.InvalidName(
                kind=kind, reason=f"{_show(text)} must not contain '/'"
            )
        if text in (".", ".."):
            raise exception.InvalidName(kind=kind, reason=f"{text!r} is not allowed")
    return text


def validate_account(name: str | bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Check an account name and return it as ``str``.

    :raises storaged.exception.InvalidName: with the reason.
    """
    return _check_name(name, "account name", limits.max_account_name_length, True)


def validate_container(name: str | bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Check a container name and return it as ``str``.

    :raises storaged.exception.InvalidName: with the reason.
    """
    return _check_name(
        name, "container name", limits.max_container_name_length, True
    )


def validate_object(name: str | bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Check an object name and return it as ``str``; ``/`` is allowed.

    Names are never used as paths here, but clients and sync targets that
    map names onto filesystems would be tricked by ``.`` and ``..``
    segments, and control characters break listings and logs: both are
    refused.

    :raises storaged.exception.InvalidName: with the reason.
    """
    text = _check_name(name, "object name", limits.max_object_name_length, False)
    if any(segment in (".", "..") for segment in text.split("/")):
        raise exception.InvalidName(
            kind="object name",
            reason="%r has a '.' or '..' path segment" % _short(text),
        )
    for i, char in enumerate(text):
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise exception.InvalidName(
                kind="object name",
                reason="%r holds control character %#04x at %d"
                % (_short(text), ord(char), i),
            )
    return text


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def canonical_key(key: str) -> str:
    """Return a header name in the case Swift gives it (``X-Container-Meta-Color``).

    Header names are case-insensitive; keeping one spelling of each means a
    newer ``x-container-meta-color`` replaces an older ``X-CONTAINER-META-COLOR``.
    """
    return key.title()


def validate_metadata(
    metadata: Mapping[str, str],
    *,
    kind: str,
    prefix: str,
    limits: Limits = DEFAULT_LIMITS,
    allow_empty_values: bool = True,
    raw_values: bool = False,
) -> dict[str, str]:
    """Check metadata and return it with canonical keys.

    :param metadata: header name -> value.
    :param kind: ``"account metadata"``, ``"container metadata"`` or
        ``"object metadata"``.
    :param prefix: the user metadata prefix whose entries obey the limits
        of ``limits`` (counted after the prefix, as Swift does).
    :param allow_empty_values: an empty value is how a container metadata
        update deletes a key.
    :param raw_values: values may carry bytes that are not UTF-8, as lone
        surrogates (``surrogateescape``): Swift keeps an object's metadata
        whatever its bytes.  Sizes count those bytes.
    :raises storaged.exception.InvalidName: naming the offending key;
        :class:`~storaged.exception.MetadataTooLarge` when the user metadata
        has too many entries or bytes.
    """
    if not isinstance(metadata, Mapping):
        raise exception.InvalidName(
            kind=kind, reason=f"must be a mapping, not {type(metadata).__name__}"
        )
    result: dict[str, str] = {}
    count = 0
    overall = 0
    lower_prefix = prefix.lower()
    for key, value in metadata.items():
        key = check_text(key, kind + " key")
        if not _TOKEN.match(key) or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise exception.InvalidName(
                kind=kind,
                reason=f"key {_show(key)} is not a header name of at most "
                f"{MAX_KEY_BYTES} characters",
            )
        value = (
            _check_raw_text(value, f"{kind} value of {key}")
            if raw_values
            else check_text(value, f"{kind} value of {key}", show=False)
        )
        if "\r" in value or "\n" in value:
            raise exception.InvalidName(
                kind=kind, reason=f"value of {key} holds CR or LF"
            )
        if not value and not allow_empty_values:
            raise exception.InvalidName(kind=kind, reason=f"value of {key} is empty")
        value_bytes = len(value.encode("utf-8", "surrogateescape"))
        if value_bytes > MAX_VALUE_BYTES:
            raise exception.InvalidName(
                kind=kind,
                reason=f"value of {key} is longer than {MAX_VALUE_BYTES} bytes",
            )
        canonical = canonical_key(key)
        if canonical in result:
            raise exception.InvalidName(
                kind=kind, reason=f"key {key} is given twice (keys ignore case)"
            )
        result[canonical] = value
        if key.lower().startswith(lower_prefix):
            name = key[len(prefix):]
            if not name:
                raise exception.InvalidName(
                    kind=kind, reason="metadata name cannot be empty"
                )
            name_bytes = len(name.encode("utf-8"))
            if name_bytes > limits.max_meta_name_length:
                raise exception.InvalidName(
                    kind=kind,
                    reason=f"metadata name {_show(name)} is longer than "
                    f"{limits.max_meta_name_length} bytes",
                )
            if value_bytes > limits.max_meta_value_length:
                raise exception.InvalidName(
                    kind=kind,
                    reason=f"value of {key} is longer than "
                    f"{limits.max_meta_value_length} bytes",
                )
            if value:
                count += 1
                overall += name_bytes + value_bytes
    if count > limits.max_meta_count:
        raise exception.MetadataTooLarge(
            kind=kind,
            reason=f"{count} metadata items, the limit is {limits.max_meta_count}",
            limit="count",
            maximum=limits.max_meta_count,
        )
    if overall > limits.max_meta_overall_size:
        raise exception.MetadataTooLarge(
            kind=kind,
            reason=f"metadata is {overall} bytes, the limit is "
            f"{limits.max_meta_overall_size}",
            limit="size",
            maximum=limits.max_meta_overall_size,
        )
    return result


def check_user_metadata_totals(
    metadata: Mapping[str, str],
    *,
    kind: str,
    prefix: str,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Check the count and total size of the non-empty user metadata.

    Used on an account's or a container's metadata after an update was
    merged in, so that several small updates cannot together exceed the
    limits.

    :raises storaged.exception.MetadataTooLarge: when over a limit.
    """
    live = {k: v for k, v in metadata.items() if v}
    validate_metadata(live, kind=kind, prefix=prefix, limits=limits)
