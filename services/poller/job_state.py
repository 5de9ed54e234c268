"""What the journal keeps of a printer's print job between readings (``job_follow.py``)."""

from __future__ import annotations

import msgspec

from services.poller.estimate import Estimator
from services.poller.jobs import OpenJob


class FileHistory(msgspec.Struct, frozen=True):
    """How long the last completed prints of one file took (printing time, seconds)."""

    file: str
    print_s: tuple[float, ...]


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """The job part of the journal, written with the events of the same reading."""

    job: OpenJob | None
    estimator: Estimator
    boot_id: str
    history: tuple[FileHistory, ...]
