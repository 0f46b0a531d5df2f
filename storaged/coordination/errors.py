"""Errors of the coordination layer.

They sit under the storaged root error and carry its markers, so that the
periodic loops know what to do with them:

* :class:`CoordinationUnavailable` and :class:`LockAcquireTimeout` are
  retryable: the item is tried again on a later pass;
* :class:`LockLost` is fatal for the work done under the lock: the holder
  must stop acting at once, another process may already own the name.
"""

from __future__ import annotations

from storaged import exception


class CoordinationError(exception.StoragedError):
    """Something went wrong with coordination (group, lock or back end)."""

    msg_fmt = "Coordination error: %(reason)s"


class CoordinationUnavailable(CoordinationError, exception.RetryableError):
    """The coordination back end cannot be reached right now.

    Raised at once while the heartbeat thread reconnects: callers never hang
    on a back end that is down.
    """

    msg_fmt = "Coordination back end %(backend)s unavailable: %(reason)s"


class LockAcquireTimeout(CoordinationError, exception.RetryableError):
    """A lock was not acquired within the time allowed."""

    msg_fmt = "Could not lock %(name)s within %(timeout).1fs"


class LockLost(CoordinationError, exception.FatalError):
    """A lock held by this process is no longer held.

    Its deadline passed without a successful refresh, or the back end
    reported it gone (expired, taken over, session lost).
    """

    msg_fmt = "Lock %(name)s (token %(token)s) was lost: %(reason)s"
