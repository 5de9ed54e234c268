"""The lease state machine of one printer, as pure decisions: when to hold its TCP connection,
when to look again, when a failure becomes a reported state.

Theory of operation
-------------------
The printer serves one controlling client well, and the vendor slicer needs the connection
too, so the gateway *leases* it. After every cycle the watcher asks this module what to do
next; nothing here does I/O, so the whole policy is the table in ``test_poller_schedule.py``.

* **PROBING** (no link): every ``probe_interval_s`` (jittered) connect with a short timeout,
  read M115, M119, M105, M27 and close again at once. Read-only, so no ``~M601``. A probe
  holds the socket for a few round trips only. While a job is still open but the printer
  is between states (e.g. it just finished), the probes come every ``poll_interval_s``.
* **WATCHING** (link held): the printer is printing or paused, or busy (homing, filament)
  inside a job. Keep the one connection and read every ``poll_interval_s``. When the job
  ends the watcher closes the link in the same cycle (the decision says PROBING).
* **RETRYING** (no link): a read failed. The link is closed and the read retried quickly,
  with a doubling jittered backoff, *without* a status: a single dropped connection is
  not news.
* **TROUBLE** (no link): ``retry_attempts`` consecutive failures. The failure is reported
  (``report``): connect timeouts / no route mean **offline**; refused connections, starved
  replies, resets and garbled or interleaved replies mean another client has the printer:
  **held_by_other_client**; framed replies whose content cannot be read mean the printer
  answers but not sensibly: **error** (no connectivity event: it is reachable). Then the
  printer is probed at the probe interval; a job in progress is re-checked faster
  (``active_recheck_s``), so its return, or ``printer_lost_while_printing`` after the
  grace period, is seen in time. Every further failure is reported again (a status per
  look); a successful read leaves TROUBLE for PROBING or WATCHING.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Literal

from gateway.errors import PrinterUnreachableError, ReplyTooLargeError, UnexpectedPayloadError
from gateway.loops import doubling
from gateway.messages import PrinterState
from services.poller.protocol import Activity


class Lease(enum.Enum):
    """Where one printer's lease stands between two cycles."""

    PROBING = "probing"
    WATCHING = "watching"
    RETRYING = "retrying"
    TROUBLE = "trouble"


@dataclass(frozen=True)
class Tuning:
    """Timing knobs that are not in the config contract (tests shorten them)."""

    connect_timeout_s: float = 3.0
    retry_attempts: int = 3
    retry_backoff_s: float = 0.25
    retry_backoff_cap_s: float = 2.0
    lost_grace_s: float = 60.0
    active_recheck_s: float = 5.0
    verify_within_s: float = 5.0
    request_timeout_s: float = 5.0


@dataclass(frozen=True)
class Timing:
    """The intervals the decisions use: the printer's config and the internal tuning."""

    poll_interval_s: float
    probe_interval_s: float
    tuning: Tuning = Tuning()


@dataclass(frozen=True)
class Decision:
    """What to do after a cycle: the lease's new state, how long until the next cycle, and
    whether to spread that delay (probes and retries of many printers must not align)."""

    lease: Lease
    delay_s: float
    jitter: bool = False

    @property
    def hold_link(self) -> bool:
        """Keep the connection open until the next cycle."""
        return self.lease is Lease.WATCHING

    @property
    def report(self) -> bool:
        """A failure is reported as a state now (not retried quietly first)."""
        return self.lease is Lease.TROUBLE

    def next_delay_s(self) -> float:
        """The delay to sleep: jittered between half and all of it when asked for."""
        return jittered(self.delay_s) if self.jitter else self.delay_s


def after_reading(activity: Activity, job_active: bool, timing: Timing) -> Decision:
    """The printer answered; `job_active`: a print job is open (events.Belief)."""
    watching = activity in (Activity.PRINTING, Activity.PAUSED) or (
        job_active and activity is Activity.BUSY
    )
    if watching:
        return Decision(Lease.WATCHING, timing.poll_interval_s)
    if job_active:
        return Decision(Lease.PROBING, timing.poll_interval_s)
    return Decision(Lease.PROBING, timing.probe_interval_s, jitter=True)


def after_failure(failures: int, job_active: bool, timing: Timing) -> Decision:
    """The `failures`-th read in a row failed (1 for the first)."""
    tuning = timing.tuning
    if failures < tuning.retry_attempts:
        delay = doubling(tuning.retry_backoff_s, failures - 1, tuning.retry_backoff_cap_s)
        return Decision(Lease.RETRYING, delay, jitter=True)
    if job_active:
        recheck = min(tuning.active_recheck_s, timing.probe_interval_s)
        return Decision(Lease.TROUBLE, recheck, jitter=True)
    return Decision(Lease.TROUBLE, timing.probe_interval_s, jitter=True)


FailureKind = Literal["offline", "held", "error"]


def failure_kind(err: Exception) -> FailureKind:
    """What a failed read says about the printer: gone (``offline``), answering for someone
    else (``held``: refused, starved, reset, garbled), or answering nonsense (``error``)."""
    if isinstance(err, UnexpectedPayloadError | ReplyTooLargeError):
        return "error"
    if isinstance(err, PrinterUnreachableError):
        return "offline"
    return "held"


REPORTED_STATE: dict[FailureKind, PrinterState] = {
    "offline": "offline",
    "held": "held_by_other_client",
    "error": "error",
}


def jittered(base_s: float) -> float:
    """A delay between half and all of base_s, so retries of many printers spread out."""
    return base_s * random.uniform(0.5, 1.0)
