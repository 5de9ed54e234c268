"""The wire shapes of jobs (architecture §4.3): a status's ``job`` block and the ``job``
record sent once per print on the reliable lane.

Kept apart from ``gateway/messages.py`` only while that module is being changed elsewhere:
``JobRecord`` is a ``_Record`` like the others, and both belong in messages.py, with
``Status.job: JobProgress | None = None`` and ``JobRecord`` in the ``Record`` union (until
then no decoder of records knows the ``job`` tag). Same rules as every wire struct: unknown
fields allowed, new fields with defaults, field types never change.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.messages import AwareDatetime, Percent, Text, _Record

JobOutcome = Literal["completed", "cancelled", "failed", "interrupted"]
EstimateOrigin = Literal["printer", "history", "mixed", "linear", "none"]
# A print lasts days at most; a bound keeps garbage (or a clock gone mad) out of records.
MAX_SECONDS = 366 * 24 * 3600.0
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS)]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]
# The estimate's error at each mark it reached, |predicted - actual| / actual remaining print
# time, keyed "10", "25", "50", "75"; null where it had no number. Only completed jobs.
EstimateErrors = dict[str, Annotated[float, msgspec.Meta(ge=0.0)] | None]


class JobProgress(msgspec.Struct, frozen=True, kw_only=True):
    """``job`` of a status while a print runs or is paused. ``elapsed_s`` is printing time
    (warm-up and pauses excluded); ``remaining_s``/``eta`` null without a trustworthy
    estimate."""

    id: JobId
    started_at: AwareDatetime
    elapsed_s: Seconds
    remaining_s: Seconds | None = None
    eta: AwareDatetime | None = None
    estimate_origin: EstimateOrigin = "none"


class JobRecord(_Record, frozen=True, kw_only=True, tag="job"):
    """One finished print; ``print_s`` excludes ``warmup_s`` and ``paused_s``."""

    job_id: JobId
    file: Text | None = None
    outcome: JobOutcome
    started_at: AwareDatetime
    ended_at: AwareDatetime
    print_s: Seconds
    warmup_s: Seconds = 0.0
    paused_s: Seconds = 0.0
    pause_count: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    max_progress_percent: Percent = 0.0
    estimate_at_start_s: Seconds | None = None
    estimate_origin: EstimateOrigin = "none"
    estimate_errors: EstimateErrors = msgspec.field(default_factory=dict)
