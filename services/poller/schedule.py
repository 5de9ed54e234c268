"""The lease state machine of one printer, as pure decisions: when to hold its TCP connection,
when to look again, when a failure becomes a reported state.

Theory of operation
-------------------
The printer serves one controlling client well, and the vendor slicer needs the connection
too, so the gateway *leases* it. A ``LeaseState`` moves on each cycle's outcome
(``after_reading``, ``after_failure``); ``next_look`` says when to look again in that state.
Nothing here does I/O, so the whole policy is the tables in ``test_poller_schedule.py``.

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
  look); a successful read leaves TROUBLE (or RETRYING) for PROBING or WATCHING.

Another client (``sharing.py``) overrides two of these while the link is not held: a
refused or turned-away connection, and any failure while the printer is already held, go
to sharing (no RETRYING: a busy printer is not hammered), and while sharing says SUSPECT or
HELD, sharing's ``next_look`` paces the probes. ``Listening`` is how long a probe keeps its
connection to hear another client's replies leak in (its cost: docs/protocol.md).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from gateway.loops import doubling
from services.poller.protocol import Activity


class Lease(enum.Enum):
    """Where one printer's lease stands between two cycles."""

    PROBING = "probing"
    WATCHING = "watching"
    RETRYING = "retrying"
    TROUBLE = "trouble"


@dataclass(frozen=True)
class Listening:
    """How long a probe keeps its connection to hear leaks (the cost of listening)."""

    idle_listen_s: float = 0.45  # a whole probe: connect, read, listen, close
    held_listen_s: float = 0.8  # a probe while held: > one period of a 2 Hz poller
    clear_after_s: float = 0.7  # quiet listening that ends HELD (<= held_listen_s)
    least_listen_s: float = 0.25  # a free probe listens at least this, after slow reads too


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
    listening: Listening = Listening()


@dataclass(frozen=True)
class Timing:
    """The intervals the decisions use: the printer's config and the internal tuning."""

    poll_interval_s: float
    probe_interval_s: float
    tuning: Tuning = Tuning()


@dataclass(frozen=True)
class LeaseState:
    """The lease's state and the consecutive failed reads that led to it."""

    lease: Lease = Lease.PROBING
    failures: int = 0

    @property
    def hold_link(self) -> bool:
        """Keep the connection open until the next cycle."""
        return self.lease is Lease.WATCHING

    @property
    def report(self) -> bool:
        """The failure is reported as a state now (not retried quietly first)."""
        return self.lease is Lease.TROUBLE


@dataclass(frozen=True)
class Look:
    """When to look again: a delay, and whether to spread it (the probes and retries of
    many printers must not align)."""

    delay_s: float
    jitter: bool = False
    least_s: float = 0.0  # a jittered delay never goes below this (sharing's back-off)

    def next_delay_s(self) -> float:
        """The delay to sleep: jittered between half and all of it (but at least
        ``least_s``) when asked for."""
        if not self.jitter:
            return self.delay_s
        return max(min(self.least_s, self.delay_s), jittered(self.delay_s))


def after_reading(activity: Activity, job_active: bool) -> LeaseState:
    """The printer answered (from any state); `job_active`: a print job is open
    (events.Belief). A print, a pause, or a busy printer inside a job is watched."""
    watching = activity in (Activity.PRINTING, Activity.PAUSED) or (
        job_active and activity is Activity.BUSY
    )
    return LeaseState(Lease.WATCHING if watching else Lease.PROBING)


def after_failure(state: LeaseState, timing: Timing) -> LeaseState:
    """A read failed: one more failure in a row; reported from ``retry_attempts`` on."""
    failures = state.failures + 1
    lease = Lease.RETRYING if failures < timing.tuning.retry_attempts else Lease.TROUBLE
    return LeaseState(lease, failures)


def next_look(state: LeaseState, job_active: bool, timing: Timing) -> Look:
    """When to look again in `state`."""
    tuning = timing.tuning
    match state.lease:
        case Lease.WATCHING:
            return Look(timing.poll_interval_s)
        case Lease.PROBING if job_active:  # a job's end is being settled
            return Look(timing.poll_interval_s)
        case Lease.RETRYING:
            delay = doubling(tuning.retry_backoff_s, state.failures - 1, tuning.retry_backoff_cap_s)
            return Look(delay, jitter=True)
        case Lease.TROUBLE if job_active:  # its return, or its loss, must be seen in time
            return Look(min(tuning.active_recheck_s, timing.probe_interval_s), jitter=True)
    return Look(timing.probe_interval_s, jitter=True)


def jittered(base_s: float) -> float:
    """A delay between half and all of base_s, so retries of many printers spread out."""
    return base_s * random.uniform(0.5, 1.0)
