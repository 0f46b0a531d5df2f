"""systemd notifications: READY, STATUS, STOPPING and the watchdog.

The notify socket is captured (and removed from the environment) as soon as a
daemon starts, so that no library announces READY before storaged is really
serving; storaged sends ``READY=1`` itself once its service has started.

The watchdog is fed from a native OS thread (see
:func:`storaged.concurrency.start_native_thread`): a green thread stuck in a
blocking call cannot starve it.  Under oslo.service's threading backend the
service runs in a child of the main process, so the units set
``NotifyAccess=all``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import MutableMapping
import logging
import os
import threading
from typing import Any

from storaged import concurrency

LOG = logging.getLogger(__name__)


class Notifier:
    """Sends ``sd_notify`` datagrams to the socket systemd gave the process."""

    def __init__(
        self, socket_path: str | None, watchdog_usec: int = 0, watchdog_pid: int = 0
    ) -> None:
        self.socket_path = socket_path
        self.watchdog_usec = watchdog_usec
        self.watchdog_pid = watchdog_pid
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop: threading.Event | None = None
        #: number of WATCHDOG=1 messages sent (tests, status)
        self.watchdog_pings = 0

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, unset: bool = True
    ) -> Notifier:
        """Capture systemd's variables; remove them from ``environ`` if asked."""
        env: MutableMapping[str, str] = os.environ if environ is None else environ
        socket_path = env.get("NOTIFY_SOCKET") or None
        try:
            usec = int(env.get("WATCHDOG_USEC", "0") or 0)
            pid = int(env.get("WATCHDOG_PID", "0") or 0)
        except ValueError:
            usec, pid = 0, 0
        if unset:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(name, None)
        return cls(socket_path, usec, pid)

    @property
    def enabled(self) -> bool:
        """Tell whether systemd is listening."""
        return bool(self.socket_path)

    def notify(self, **fields: Any) -> bool:
        """Send ``KEY=value`` lines; return False (and log) if it failed."""
        if not self.socket_path:
            return False
        message = "\n".join("%s=%s" % (k.upper(), v) for k, v in fields.items())
        address = self.socket_path
        if address.startswith("@"):
            address = "\0" + address[1:]
        socket_mod = concurrency.native_module("socket")
        try:
            with socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_DGRAM) as sock:
                sock.sendto(message.encode("utf-8"), address)
        except OSError as err:
            LOG.warning("systemd notification %r failed: %s", message, err)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tell systemd the daemon is serving."""
        if status:
            return self.notify(ready=1, status=status)
        return self.notify(ready=1)

    def status(self, text: str) -> bool:
        """Set the unit's free-form status line."""
        return self.notify(status=text)

    def stopping(self) -> bool:
        """Tell systemd the daemon is shutting down."""
        return self.notify(stopping=1)

    def watchdog_interval(self) -> float:
        """Return seconds between pings (half of WatchdogSec), 0 if disabled."""
        if not self.socket_path or self.watchdog_usec <= 0:
            return 0.0
        if self.watchdog_pid and self.watchdog_pid not in (os.getpid(), os.getppid()):
            # The watchdog is meant for another process of the unit.
            return 0.0
        return self.watchdog_usec / 1e6 / 2.0

    def start_watchdog(self) -> bool:
        """Feed the watchdog from a native thread; return whether it started."""
        interval = self.watchdog_interval()
        if interval <= 0 or self._watchdog is not None:
            return False
        stop = concurrency.native_event()
        self._watchdog_stop = stop

        def feed() -> None:
            while not stop.is_set():
                if self.notify(watchdog=1):
                    self.watchdog_pings += 1
                stop.wait(interval)

        self._watchdog = concurrency.start_native_thread(feed, "systemd-watchdog")
        LOG.debug("Feeding the systemd watchdog every %.2fs", interval)
        return True

    def stop_watchdog(self) -> None:
        """Stop feeding the watchdog."""
        if self._watchdog_stop is not None:
            self._watchdog_stop.set()
        self._watchdog = None
        self._watchdog_stop = None


def environ_snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the systemd variables present (for logs and tests)."""
    env = os.environ if environ is None else environ
    return {
        k: env[k]
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
        if k in env
    }
