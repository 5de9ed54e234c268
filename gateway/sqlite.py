"""Opening a SQLite file the one way the gateway does (queue, ledger, reference API store).

WAL (readers never block the writer, and a commit is one append), autocommit unless a caller
says BEGIN, a busy timeout for the rare second connection, and a file that is the owner's
alone from its first byte: SQLite gives its -wal and -shm files the database's mode.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from gateway.files import private_dir

BUSY_TIMEOUT_S = 10.0


def connect(
    path: Path,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    any_thread: bool = False,
) -> sqlite3.Connection:
    """A connection to `path`, created owner-only (folder 0700 when made, file 0600) if
    missing. ``FULL`` when a commit is a promise across power loss (an acknowledgement, a
    command's state); ``NORMAL`` where losing the last commits to a power cut is acceptable.
    `any_thread` for a connection guarded by its owner's lock or used by one thread at a
    time, though not the one that opened it."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:  # made readable by others by an older version
        path.chmod(0o600)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=not any_thread
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can neither write nor create (a tool looking at another process's
    file: never repairs, never changes it). sqlite3.Error when it cannot be opened."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S / 2)
