"""The recent print jobs of one printer, kept on the Pi for ``printer-gateway jobs``: one
job record per line, the newest last, at most KEEP (the API keeps them all).

Written once per print (an append), rewritten only when it has grown past KEEP by a tenth:
a few writes a day, never one per poll. The job record is already durable in the journal
(and goes to the API) before it is written here: a failure to write here is logged once and
costs only this local list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from gateway.errors import GatewayError
from gateway.files import private_dir, write_atomically
from gateway.messages import DECODE_ERRORS, Job, json_encoder

logger = logging.getLogger(__name__)
KEEP = 1000


class JobsLogError(GatewayError):
    """The list cannot be read (its permissions, say)."""


_decoder = msgspec.json.Decoder(Job)


def append_jobs(path: Path, jobs: Iterable[Job]) -> None:
    """Add job records (never raises: see the module's docstring)."""
    try:
        private_dir(path.parent)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "ab+") as file:
            size = file.seek(0, os.SEEK_END)
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                file.write(b"\n")  # a line torn by a power cut stays alone, not glued to ours
            for job in jobs:
                file.write(json_encoder.encode(job) + b"\n")
        lines = path.read_bytes().count(b"\n")
        if lines > KEEP + KEEP // 10:
            kept = path.read_bytes().splitlines()[-KEEP:]
            write_atomically(path, b"\n".join(kept) + b"\n")
    except OSError as err:
        logger.warning("cannot keep the job in %s (it still went to the API): %s", path, err)


def read_jobs(path: Path) -> list[Job]:
    """The job records in a file, oldest first; a line that cannot be read is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise JobsLogError(f"cannot read {path}: {err.strerror or err}") from err
    jobs = []
    for line in data.splitlines():
        try:
            jobs.append(_decoder.decode(line))
        except DECODE_ERRORS:
            continue  # a torn last line after a power cut, say
    return jobs
