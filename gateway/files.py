"""Private directories, and writing a small file so readers never see it half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write to a sibling temp file (mode 0600) and rename it over `path`. With `durable`,
    the data and the rename are fsynced, so the new content survives a power cut."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(path)
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def private_dir(path: Path) -> bool:
    """Make sure `path` exists; a directory this call creates is owner-only (0700). An
    existing one is left as it is (it may be shared, e.g. /run or /tmp: changing its mode
    would break others); returns whether it is accessible to other users."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return bool(path.stat().st_mode & 0o077)
    os.chmod(path, 0o700)  # the mode given to mkdir is filtered by the umask
    return False
