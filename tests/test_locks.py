"""gateway.locks: `holder` says who holds a lock without taking it or creating it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.locks import hold, holder

_HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from gateway.locks import hold\n"
    "hold(Path(sys.argv[1]), 'the test')\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


@contextmanager
def held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock at `path` until the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "held\n"
        yield child
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


def test_no_file_is_nobody_and_the_probe_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "poller.lock"
    assert holder(path) is None
    assert not path.exists()


def test_a_held_lock_names_its_holder_and_stays_held(tmp_path: Path) -> None:
    path = tmp_path / "poller.lock"
    with held_elsewhere(path) as child:
        assert holder(path) == child.pid
        assert holder(path) == child.pid  # the probe took nothing
    assert holder(path) is None  # the kernel let go with the process


def test_a_free_lock_is_nobody_and_the_probe_leaves_it_free(tmp_path: Path) -> None:
    path = tmp_path / "poller.lock"
    with held_elsewhere(path):
        pass
    assert holder(path) is None
    descriptor = hold(path, "the test")  # nothing kept: it can be taken at once
    try:
        assert holder(path) is not None  # this process holds it (flock is per open file)
    finally:
        os.close(descriptor)
    assert holder(path) is None


def test_a_read_only_lock_file_can_be_probed(tmp_path: Path) -> None:
    path = tmp_path / "poller.lock"
    with held_elsewhere(path) as child:
        path.chmod(0o400)
        assert holder(path) == child.pid
