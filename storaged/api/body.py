"""Request bodies in, object data out, without stalling the server.

Uploads.  :class:`BodyReader` reads a request body from ``wsgi.input``
with a size limit, and turns a client's disappearance or silence into
:class:`ClientDisconnect` (499) or :class:`ClientTimeout` (408).  The object
service stores what it reads in one synchronous call, which the handlers
run through :func:`storaged.concurrency.run_blocking`:

* under the threading backend that is a plain call, and the service reads
  the :class:`BodyReader` itself;
* under eventlet the call runs in a native thread of eventlet's pool, which
  must not touch the client's (green) socket.  :class:`HubFeed` then reads
  the body in a green thread on the hub and hands the chunks over through a
  small native queue (at most ``depth`` chunks: a slow disk slows the
  client down instead of filling memory).

Downloads.  :class:`ObjectBody` yields an object's chunks, each read with
``run_blocking``, and closes the back end's stream when the server is done
with it, however the response ended.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import logging
from typing import Any
import weakref

import tenacity

from storaged import concurrency
from storaged import exception
from storaged.common import retry

LOG = logging.getLogger(__name__)


class ClientDisconnect(exception.StoragedError):
    """The client went away (or broke the framing) before the body was read."""

    msg_fmt = "Client disconnected: %(reason)s"


class ClientTimeout(exception.StoragedError):
    """The client stopped sending the body for longer than the timeout."""

    msg_fmt = "Client sent nothing for %(timeout)ss"


class RequestTooLarge(exception.StoragedError):
    """A chunked body grew beyond the largest object allowed."""

    msg_fmt = "Request body larger than %(limit)d bytes"


class BodyReader:
    """A request body, read with a limit (file-like: ``read(n)``).

    :param stream: ``wsgi.input`` (the server has decoded chunked bodies).
    :param length: the declared ``Content-Length``, or None when chunked.
    :param limit: most bytes a chunked body may have.
    :param timeout: the client timeout, for messages.
    """

    def __init__(
        self, stream: Any, length: int | None, limit: int, timeout: float = 0.0
    ) -> None:
        self._stream = stream
        self._length = length
        self._limit = limit
        self._timeout = timeout
        self.received = 0
        #: True once the end of the body was read
        self.complete = length == 0

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes; ``b""`` at the end of the body."""
        if self.complete:
            return b""
        if self._length is not None:
            left = self._length - self.received
            size = left if size is None or size < 0 else min(size, left)
        elif size is None or size < 0:
            size = 1024 * 1024
        try:
            data = self._stream.read(size)
        except TimeoutError as err:
            raise ClientTimeout(timeout=self._timeout) from err
        except (OSError, ValueError) as err:
            # eventlet raises ValueError subclasses for a broken chunked
            # framing, OSError when the connection went away.
            raise ClientDisconnect(reason=type(err).__name__) from err
        if not data:
            if self._length is not None and self.received < self._length:
                raise ClientDisconnect(
                    reason="%d of %d bytes received" % (self.received, self._length)
                )
            self.complete = True
            return b""
        self.received += len(data)
        if self._length is None and self.received > self._limit:
            raise RequestTooLarge(limit=self._limit)
        if self._length is not None and self.received >= self._length:
            self.complete = True
        return bytes(data)


_EOF = b""
#: The feeds whose body is being stored right now (see :func:`abort_uploads`).
_ACTIVE: weakref.WeakSet[HubFeed] = weakref.WeakSet()


def abort_uploads() -> int:
    """Make every upload in progress fail at once (the server is stopping).

    The native threads storing them would otherwise wait for their client
    up to the client timeout, and keep the process from exiting.

    :returns: how many uploads were aborted.
    """
    feeds = list(_ACTIVE)
    for feed in feeds:
        feed.abort()
    return len(feeds)


class HubFeed:
    """A request body read on the eventlet hub, consumed from a native thread.

    A green thread (the *pump*) reads chunks from the :class:`BodyReader`
    and puts them in a native queue; :meth:`read`, called by the object
    service in its native thread, takes them out.  An error of the pump
    (the client went away) is handed over the same way and raised by
    :meth:`read`.  :meth:`close` tells the pump to stop, e.g. when the
    store failed before the body was all read.

    :param reader: the body.
    :param chunk_size: bytes the pump reads at a time.
    :param timeout: seconds :meth:`read` waits for a chunk (the client
        timeout: the pump's own read times out first).
    :param depth: chunks queued at most.
    """

    def __init__(
        self, reader: BodyReader, chunk_size: int, timeout: float, depth: int = 8
    ) -> None:
        self._reader = reader
        self._chunk_size = chunk_size
        self._timeout = timeout + 5.0
        queue_mod = concurrency.native_module("queue")
        self._queue: Any = queue_mod.Queue(depth)
        self._empty: type[Exception] = queue_mod.Empty
        self._full: type[Exception] = queue_mod.Full
        self._pending = b""
        self._done = False
        self._stopped = False
        _ACTIVE.add(self)
        self._task = concurrency.spawn(self._pump)

    # -- the hub side ------------------------------------------------------------

    def _pump(self) -> None:
        try:
            while not self._stopped:
                data = self._reader.read(self._chunk_size)
                if not self._put(data) or not data:
                    return
        except BaseException as err:  # handed to the consumer, who raises it
            self._put(err)

    def _put(self, item: bytes | BaseException) -> bool:
        if self._stopped:
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except self._full:
            pass
        # The consumer writes to disk in a native thread; wait for it
        # without blocking the hub (a native wait would).
        try:
            retry.retrying(
                retry=tenacity.retry_if_exception_type(self._full),
                stop=lambda _state: self._stopped,
                wait=retry.wait_doubling(0.0005, 0.01),
                sleep=concurrency.sleep,
            )(self._queue.put_nowait, item)
        except self._full:
            return False
        return True

    def close(self) -> None:
        """Stop the pump (it ends after its current read)."""
        self._stopped = True
        _ACTIVE.discard(self)

    def abort(self) -> None:
        """Stop the pump and make the consumer's next read fail."""
        self._stopped = True
        error = ClientDisconnect(reason="the server is stopping")
        for _attempt in range(2):
            try:
                self._queue.put_nowait(error)
                return
            except self._full:
                try:
                    self._queue.get_nowait()
                except self._empty:
                    pass

    # -- the native side ---------------------------------------------------------

    def _take(self, block: bool) -> bytes | None:
        try:
            item = self._queue.get(block, self._timeout if block else None)
        except self._empty:
            if block:
                raise ClientTimeout(timeout=self._timeout) from None
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if not item:
            self._done = True
        assert isinstance(item, bytes)
        return item

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes of the body (``b""`` at its end)."""
        if size is None or size < 0:
            size = self._chunk_size
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        if not parts and not self._done:
            chunk = self._take(block=True)
            if chunk:
                parts.append(chunk)
                have += len(chunk)
        # Join whatever else is already there, without waiting for more.
        while have < size and not self._done:
            chunk = self._take(block=False)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if len(data) > size:
            data, self._pending = data[:size], data[size:]
        return data


class ObjectBody:
    """An object's data as a WSGI response body.

    :param chunks: the back end's stream (closed by :meth:`close`).
    :param on_error: called with the exception when reading fails after the
        response started (the connection is then cut: the client sees a
        short body, never a wrong one).
    """

    def __init__(
        self, chunks: Iterator[bytes], on_error: Callable[[BaseException], None]
    ) -> None:
        self._chunks = chunks
        self._on_error = on_error
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = concurrency.run_blocking(next, self._chunks, _EOF)
            except Exception as err:
                self._on_error(err)
                raise
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Release the back end's stream."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            try:
                concurrency.run_blocking(close)
            except Exception:
                LOG.exception("Could not close an object's stream")
