"""systemd's sd_notify protocol: datagrams like ``READY=1`` to the socket named by ``$NOTIFY_SOCKET``.

A no-op outside systemd. Supports abstract socket names (``@...``) and the watchdog interval from
``$WATCHDOG_USEC`` (respecting ``$WATCHDOG_PID``).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd when run as a ``Type=notify`` service; does nothing otherwise."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the loop on a busy receiver: a message that does not fit is dropped (debug log).
            self._socket.setblocking(False)
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        self.watchdog_seconds = 0.0
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1e6
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False (and a debug log) when it could not be sent."""
        if self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError as exc:
            log.debug("sd_notify to %r failed: %s", self._address, exc)
            return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """Ping the watchdog, at most twice per interval (call it on every processed frame)."""
        if not self.watchdog_seconds:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_seconds / 4:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
