"""Tell systemd how the service is doing: readiness, status, watchdog, stop and reload.

This is the sd_notify(3) protocol: one AF_UNIX datagram of newline-separated
``KEY=VALUE`` lines to the socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract-namespace name written with a leading ``@``). systemd-python's
``systemd.daemon.notify`` (libsystemd underneath) sends it when it is importable;
otherwise fsqd speaks the protocol itself, which is a handful of lines.

A notification must never take the daemon down: every send error is caught,
counted and logged (the first at WARNING, repeats at DEBUG until one succeeds
again). Without ``$NOTIFY_SOCKET`` (run from a shell, or Type=simple) every
method is a no-op.

The watchdog interval is half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3)
recommends, and only when ``$WATCHDOG_PID`` is absent or names this process.
"""

from __future__ import annotations

import errno
import importlib
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

__all__ = ["SystemdNotifier", "notify_address", "watchdog_interval"]

log = structlog.get_logger(__name__)

Send = Callable[[str], None]


def notify_address(value: str) -> str | bytes:
    """The socket address for a ``$NOTIFY_SOCKET`` value, as ``socket.sendto`` takes it.

    ``@name`` is the Linux abstract namespace (the address is a NUL byte then the
    name, with no trailing NUL); ``/path`` is a file-system socket. Anything else
    (relative paths, ``vsock:`` addresses) is refused with ``ValueError``.
    """
    if len(value) < 2:
        raise ValueError(f"NOTIFY_SOCKET={value!r} is too short")
    if value[0] == "@":
        return b"\0" + value[1:].encode()
    if value[0] == "/":
        return value
    raise ValueError(f"NOTIFY_SOCKET={value!r} is neither an absolute path nor @abstract")


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None without a watchdog.

    Mirrors sd_watchdog_enabled(3): no or unparsable WATCHDOG_USEC, zero, or a
    WATCHDOG_PID naming another process means there is no watchdog for us.
    """
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text:
        try:
            watchdog_pid = int(pid_text)
        except ValueError:
            return None
        if watchdog_pid != (os.getpid() if pid is None else pid):
            return None
    return usec / 2 / 1_000_000


class _DatagramSender:
    """The plain protocol: one non-blocking datagram per message.

    Non-blocking so a wedged service manager cannot stall the event loop; a full
    socket buffer is reported like any other send error.
    """

    def __init__(self, address: str | bytes) -> None:
        self._address = address
        self._sock: socket.socket | None = None

    def __call__(self, message: str) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(
                message.encode(), socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT, self._address
            )
        except OSError:
            # A fresh socket next time: cheap, and it recovers from anything odd.
            self._sock.close()
            self._sock = None
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _libsystemd_sender() -> Send | None:
    """systemd-python's notify, or None when the module is not importable."""
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None
    notify = getattr(daemon, "notify", None)
    if notify is None:
        return None

    def send(message: str) -> None:
        # libsystemd reads NOTIFY_SOCKET itself; it returns False when it is unset.
        if not notify(message):
            raise OSError(errno.ENOTCONN, "sd_notify sent nothing (NOTIFY_SOCKET unset?)")

    return send


class SystemdNotifier:
    """The daemon's Notifier (see ``fsqd.daemon.contracts``) backed by sd_notify.

    Build it with ``from_environ()``. ``send`` is what delivers one message; tests
    and other callers may pass their own.
    """

    def __init__(
        self, send: Send | None, *, watchdog_interval_s: float | None, via: str = "none"
    ) -> None:
        self._send = send
        self.watchdog_interval_s = watchdog_interval_s
        self.via = via  # "libsystemd", "socket" or "none": said once in the startup log
        self.sent = 0
        self.failed = 0
        self._failing = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, use_libsystemd: bool = True
    ) -> SystemdNotifier:
        """A notifier for the service manager that started us (a no-op one if none did)."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET")
        if not value:
            return cls(None, watchdog_interval_s=None)
        interval = watchdog_interval(env)
        try:
            address = notify_address(value)
        except ValueError as e:
            log.warning("systemd notification disabled", reason=str(e))
            return cls(None, watchdog_interval_s=None)
        # libsystemd reads the process environment, so it only serves when we were
        # handed that same environment.
        if use_libsystemd and environ is None:
            lib = _libsystemd_sender()
            if lib is not None:
                return cls(lib, watchdog_interval_s=interval, via="libsystemd")
        return cls(_DatagramSender(address), watchdog_interval_s=interval, via="socket")

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def ready(self) -> None:
        """Start-up (or a reload) is complete: sensors answer and the model is loaded."""
        self._notify("READY=1")

    def status(self, line: str) -> None:
        """One line of health for ``systemctl status`` (newlines would end the field)."""
        self._notify("STATUS=" + " ".join(line.splitlines()))

    def watchdog(self) -> None:
        """Still alive and making progress; call every ``watchdog_interval_s``."""
        self._notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Shutdown has begun (draining, flushing); systemd waits up to TimeoutStopSec."""
        self._notify("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; call ``ready()`` once the new configuration is applied.

        MONOTONIC_USEC is what systemd 253+ requires with Type=notify-reload; older
        managers ignore the unknown field and just note RELOADING=1.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def close(self) -> None:
        if isinstance(self._send, _DatagramSender):
            self._send.close()

    def _notify(self, message: str) -> None:
        if self._send is None:
            return
        try:
            self._send(message)
        except OSError as e:
            self.failed += 1
            first = not self._failing
            self._failing = True
            (log.warning if first else log.debug)(
                "sd_notify failed", message=message.split("\n", 1)[0], error=str(e)
            )
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            log.info("sd_notify works again", failed=self.failed)
