"""One of a kind: a lock file that only one process may hold (``flock``), released by the
kernel when the holder dies however it dies, so a SIGKILL never leaves a stale lock.

``printer-gateway up`` holds ``<data_dir>/gateway.lock`` for the life of its supervisord (the
descriptor is inherited across the exec): a second ``up`` on the same data directory refuses.
Each service holds ``<runtime_dir>/<service>.lock``: a second uplink on one queue, or a
second poller on one printer, refuses to start instead of fighting the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from gateway.errors import GatewayError
from gateway.files import private_dir


class AlreadyRunning(GatewayError):
    """Another process holds the lock; the message says which."""


def hold(path: Path, what: str) -> int:
    """Take the lock at `path` (made owner-only) and write this pid into it; the descriptor,
    to keep open for as long as the lock must last. AlreadyRunning names `what` and the
    holder's pid when another process has it."""
    private_dir(path.parent)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(descriptor, 32, 0).decode().split()[0])})"
        os.close(descriptor)
        raise AlreadyRunning(f"{what} is already running{holder}") from err
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def holder(path: Path) -> int | None:
    """Who holds the lock at `path`, without taking it and without creating the file: the
    holder's pid, 0 when it is held but the holder has not written its pid yet, None when
    nobody holds it (or there is no such file).

    A shared, non-blocking lock on a read-only descriptor conflicts only with the holder's
    exclusive one; when it is granted (nobody holds the lock) it is let go at once. For that
    moment a service taking the lock would be refused (``hold`` never waits): the probe is
    for ``status`` and ``check-config``, where a gateway is not starting by the microsecond.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # no such file (nothing ever held it), or not ours to read
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return int(os.pread(descriptor, 32, 0).decode().split()[0])
            except (OSError, ValueError, IndexError):
                return 0  # held, the pid not written yet (or unreadable)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)
