"""Data in and out of the ``swift`` driver: an add's stream, a read's chunks.

:class:`Feed` hands out an add's data in pieces of the size each request
needs, hashing every byte once and checking the declared size;
:class:`SwiftChunks` is what ``get`` returns: a GET's body in chunks,
verified against the recorded digest when asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
import http.client
from typing import Any
from typing import Protocol

from storaged import exception
from storaged.objectstore import hashing
from storaged.objectstore.driver import SizeMismatch
from storaged.objectstore.driver import Source
from storaged.objectstore.driver import iter_source
from storaged.objectstore.drivers.swift_client import Response
from storaged.objectstore.drivers.swift_client import SwiftTransportError
from storaged.objectstore.drivers.swift_client import hash_update


class ReadingStore(Protocol):
    """What a read needs of the :class:`~.swift.SwiftStore` it reads from.

    (A protocol, not the class: the driver module imports this one.)
    """

    @property
    def backend_id(self) -> str: ...

    def errors(self, what: str) -> AbstractContextManager[None]: ...


class Feed:
    """The data of an add: taken in pieces, hashed once, its size checked."""

    def __init__(
        self,
        object_id: str,
        stream: Source,
        size: int | None,
        chunk_size: int,
        hashers: list[Any],
    ) -> None:
        self._object_id = object_id
        self._chunks = iter_source(stream, chunk_size, size)
        self._size = size
        self._hashers = hashers
        self._pending = b""
        self._eof = False
        self.taken = 0

    def _pull(self) -> bool:
        if self._eof:
            return False
        try:
            self._pending = next(self._chunks)
        except StopIteration:
            self._eof = True
            return False
        return True

    def _hand_out(self, data: bytes) -> bytes:
        self.taken += len(data)
        if self._size is not None and self.taken > self._size:
            raise SizeMismatch(
                what=self._object_id, reason=f"declared {self._size} bytes, got more"
            )
        hash_update(self._hashers, data)
        return data

    def at_end(self) -> bool:
        """Tell whether the data is exhausted (reads ahead one chunk)."""
        if self._pending:
            return False
        return not self._pull()

    def pieces(self, n: int) -> Iterator[bytes]:
        """Yield up to ``n`` more bytes, as they come."""
        left = n
        while left > 0 and (self._pending or self._pull()):
            data, self._pending = self._pending[:left], self._pending[left:]
            left -= len(data)
            yield self._hand_out(data)

    def take(self, n: int) -> bytes:
        """Return up to ``n`` more bytes (fewer only at the end)."""
        return b"".join(self.pieces(n))

    def check_end(self) -> None:
        """Raise :class:`SizeMismatch` unless the data ended as declared."""
        if not self.at_end():
            self._hand_out(self._pending)  # raises: more than declared
            raise SizeMismatch(what=self._object_id, reason="more data than declared")
        if self._size is not None and self.taken != self._size:
            raise SizeMismatch(
                what=self._object_id,
                reason=f"declared {self._size} bytes, got {self.taken}",
            )


class SwiftChunks:
    """Chunks of a GET's body; verified against the recorded digest if asked.

    A body that ends early fails the read; the connection goes back to the
    pool once the body was read to its end, and is closed otherwise.
    """

    def __init__(
        self,
        store: ReadingStore,
        what: str,
        resp: Response | None,
        length: int,
        chunk_size: int,
        skip: int = 0,
        check: tuple[str, str, int] | None = None,
    ) -> None:
        self._store = store
        self._what = what
        self._resp = resp
        self._remaining = length
        self._length = length
        self._chunk_size = chunk_size
        self._skip = skip
        self._check = check
        self._hash = hashing.new(check[0]) if check else None
        if self._hash is not None and length == 0:
            self._verify()

    def __iter__(self) -> SwiftChunks:
        return self

    def _read(self, n: int) -> bytes:
        assert self._resp is not None
        with self._store.errors(self._what):
            try:
                data = self._resp.read(n)
            except TimeoutError as err:
                raise SwiftTransportError(
                    self._what, "timed out while reading"
                ) from err
            except OSError as err:
                raise SwiftTransportError(self._what, str(err)) from err
            except http.client.HTTPException as err:
                raise SwiftTransportError(self._what, type(err).__name__) from err
        if not data:
            raise exception.BackendUnavailable(
                backend=self._store.backend_id,
                reason=f"{self._what}: the connection ended after "
                f"{self._length - self._remaining} of {self._length} bytes",
            )
        return data

    def __next__(self) -> bytes:
        if self._resp is None or self._remaining <= 0:
            self.close()
            raise StopIteration
        try:
            while self._skip:
                self._skip -= len(self._read(min(self._skip, self._chunk_size)))
            data = self._read(min(self._chunk_size, self._remaining))
            self._remaining -= len(data)
            if self._hash is not None:
                hash_update([self._hash], data)
                if self._remaining <= 0:
                    self._verify()
            if self._remaining <= 0:
                self.close()
        except BaseException:
            self.close()
            raise
        return data

    def _verify(self) -> None:
        assert self._check is not None and self._hash is not None
        algo, digest, size = self._check
        if self._length != size or self._hash.hexdigest() != digest:
            raise exception.CorruptObject(
                what=self._what,
                reason=f"{algo} digest of the data does not match the recorded one",
            )

    def close(self) -> None:
        """Release the connection (safe to call more than once)."""
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.release()

    def __del__(self) -> None:
        self.close()
