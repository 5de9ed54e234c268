"""Private directories, writing a small file so readers never see it half-written, and
setting a damaged file aside."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(
    path: Path,
    data: bytes,
    *,
    durable: bool = False,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write to a sibling temp file and rename it over `path`: a reader sees the old file or
    the new one, whole, with its final `mode` and `owner` (uid, gid) from the first moment.
    The temp file is made anew (a leftover one, or a link put in its place, is not reused
    or followed). With `durable`, the data and the rename are fsynced, so the new content
    survives a power cut."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
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


def set_aside(path: Path) -> Path:
    """Move a damaged file (with SQLite's -wal and -shm beside it, if any) to the first free
    ``<name>.corrupt-<n>``, kept for inspection; returns the new name. The caller starts a
    fresh file and says so in its log."""
    for n in range(1, 1000):
        aside = path.with_name(f"{path.name}.corrupt-{n}")
        if not aside.exists():
            break
    else:
        raise OSError(f"too many damaged files set aside beside {path}")
    path.replace(aside)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(aside.with_name(aside.name + suffix))
    return aside
