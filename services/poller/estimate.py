"""Time left of a print from a percentage alone, as a pure function of the progress seen so
far (architecture §4.3 ``job.remaining_s``/``estimate_origin``, issue 13 point 2).

Theory of operation
-------------------
The FlashForge legacy protocol reports a percentage of the file (often whole steps) and no
time. The naive guess, time since start x (100 - p) / p, is badly wrong early: heating is in
the time but not in the percentage, and the first layers print slowly. So, as OctoPrint's
estimator does (``octoprint/printer/estimation.py``, read for reference):

* **Print time only.** Every time here is *print time*: the job tracker's ``print_s``, with
  warm-up and pauses excluded. A pause stops the clock, and with it the countdown.
* **Step onsets.** A stepwise percentage says the most at the reading where it first shows a
  new value: the print just crossed that step. Each onset is kept as (percent, print time);
  the rate is measured from the *first* onset to the latest one, which leaves out the slow
  start (first layer, purge line) before the first step.
* **Linear, once stable.** Each onset gives a linear total. It is trusted only once the
  totals of the last ``STABLE_SPAN`` points of progress agree within ``STABLE_SPREAD`` (at
  least three onsets), or the print is past ``FORCE_LINEAR_PERCENT`` (as OctoPrint falls back
  to its "dumb" estimate), whichever comes first.
* **History.** Earlier completed prints of the same file give a total (their median print
  time); remaining is that total minus the print time so far, and is dropped when it does not
  fit the progress (more than ``HISTORY_FIT`` points away) or has run out. With a stable
  linear estimate too, the two are blended, linear weighing in with the progress (``mixed``).
* **Countdown.** Between onsets the estimate counts down with print time, but never below
  what the next step would leave (the print has not reached it yet), and never below zero.
* **Origin.** ``printer`` (the printer reported a time), ``history``, ``mixed``, ``linear``,
  or ``none`` with ``remaining_s`` None: nothing trustworthy yet.

The state (``Estimator``) is a small msgspec struct the journal keeps with the job, so a
restart continues the same estimate. ``Estimator.marks`` remember what was predicted at 10,
25, 50 and 75 %; ``errors_after`` turns them into the job's estimate errors once its real
print time is known (the same figure ``benchmarks/estimate.py`` measures).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

import msgspec

Origin = Literal["printer", "history", "mixed", "linear", "none"]
STABLE_SPAN = 5.0  # points of progress the linear totals must agree over
STABLE_SPREAD = 0.15  # (max - min) / median of those totals
FORCE_LINEAR_PERCENT = 30.0
HISTORY_FIT = 25.0  # points between the progress and what the history's total implies
MARKS = (10.0, 25.0, 50.0, 75.0)
# The first layer prints slowly (and a purge line, a skirt): the rate is measured from here.
SLOW_START_PERCENT = 3.0
MAX_TOTALS = 64  # a 0.1 % firmware makes 50 onsets per STABLE_SPAN


class Onset(msgspec.Struct, frozen=True):
    """A progress step first seen: its percent, the print time then, and the linear total."""

    percent: float
    print_s: float
    total_s: float | None = None


class Mark(msgspec.Struct, frozen=True):
    """What was predicted when the progress first reached ``percent``."""

    percent: float
    print_s: float
    remaining_s: float | None
    origin: Origin


class Estimator(msgspec.Struct, frozen=True, kw_only=True):
    """What the estimate remembers of one job (journaled with it)."""

    anchors: tuple[Onset, ...] = ()  # the first onset at each whole percent
    onsets: tuple[Onset, ...] = ()  # the latest ones, the last is the latest step
    step: float | None = None  # the smallest step seen: how far the next onset is
    at_start_s: float | None = None
    origin_at_start: Origin = "none"
    started: bool = False
    marks: tuple[Mark, ...] = ()


class Estimate(msgspec.Struct, frozen=True):
    """Time left in print seconds (None: nothing trustworthy) and where it came from."""

    remaining_s: float | None
    origin: Origin


class MarkError(msgspec.Struct, frozen=True):
    """|predicted - actual| / actual remaining at one mark (None: nothing was predicted)."""

    percent: float
    error: float | None
    origin: Origin


def history_total(durations: Sequence[float]) -> float | None:
    """The print time to expect from earlier completed prints of the same file."""
    usable = [d for d in durations if d > 0.0]
    return statistics.median(usable) if usable else None


def estimate(
    state: Estimator,
    percent: float,
    print_s: float,
    history: Sequence[float] = (),
    printer_remaining_s: float | None = None,
) -> tuple[Estimator, Estimate]:
    """The estimate at one reading of a job, and the state to keep for the next."""
    state = _with_onset(state, percent, print_s)
    if printer_remaining_s is not None:
        result = Estimate(max(0.0, printer_remaining_s), "printer")
    else:
        result = _combine(
            _linear(state, percent, print_s), _from_history(history, percent, print_s), percent
        )
    if not state.started:
        state = msgspec.structs.replace(
            state, started=True, at_start_s=result.remaining_s, origin_at_start=result.origin
        )
    reached = {mark.percent for mark in state.marks}
    new = [Mark(m, print_s, result.remaining_s, result.origin) for m in MARKS if percent >= m]
    new = [mark for mark in new if mark.percent not in reached]
    if new:
        state = msgspec.structs.replace(state, marks=state.marks + tuple(new))
    return state, result


def errors_after(state: Estimator, final_print_s: float) -> tuple[MarkError, ...]:
    """The estimate's error at each mark reached, once the job's print time is known."""
    errors = []
    for mark in state.marks:
        actual = final_print_s - mark.print_s
        error = None
        if mark.remaining_s is not None and actual > 0.0:
            error = abs(mark.remaining_s - actual) / actual
        errors.append(MarkError(mark.percent, error, mark.origin))
    return tuple(errors)


# ---------------------------------------------------------------------- the parts


def _with_onset(state: Estimator, percent: float, print_s: float) -> Estimator:
    """Record a new step (a percent above every one seen), with its linear total."""
    last = state.onsets[-1].percent if state.onsets else 0.0
    if percent <= last or percent <= 0.0:
        return state
    step = percent - last if state.onsets else None
    if state.step is not None:
        step = state.step if step is None else min(step, state.step)
    anchors = state.anchors
    if not anchors or math.floor(percent) > math.floor(anchors[-1].percent):
        anchors = (*anchors, Onset(percent, print_s))  # one per whole point: at most 101
    onset = Onset(percent, print_s, _total(anchors, percent, print_s))
    reach = max(STABLE_SPAN, 2.0 * (step or 0.0))
    kept = tuple(o for o in state.onsets if o.percent >= percent - reach)
    # one onset before the span, so that "the totals agree over the span" can be judged
    older = [o for o in state.onsets if o.percent < percent - reach][-1:]
    onsets = (*older, *kept, onset)[-MAX_TOTALS:]
    return msgspec.structs.replace(state, anchors=anchors, onsets=onsets, step=step)


def _total(anchors: tuple[Onset, ...], percent: float, print_s: float) -> float | None:
    """The linear total print time at an onset: the rate since the anchor at
    ``SLOW_START_PERCENT`` (or at half the progress, before that), else from zero."""
    reference = anchors[0]
    for anchor in anchors:
        if anchor.percent <= min(SLOW_START_PERCENT, percent * 0.5):
            reference = anchor
    total = None
    if percent > reference.percent and print_s > reference.print_s:
        rate = (percent - reference.percent) / (print_s - reference.print_s)
        if rate > 0.0:  # a step too small for a float's precision is no rate at all
            total = print_s + (100.0 - percent) / rate
    elif print_s > 0.0:
        total = print_s * 100.0 / percent
    return total if total is not None and math.isfinite(total) else None


def _stable(state: Estimator, percent: float) -> bool:
    if not state.onsets or state.onsets[-1].total_s is None:
        return False
    if percent >= FORCE_LINEAR_PERCENT:
        return True
    latest = state.onsets[-1].percent
    # wide enough for three onsets of coarse steps (5 % firmware: 15 points)
    reach = max(STABLE_SPAN, 2.0 * (state.step or 0.0))
    span = [o for o in state.onsets if o.percent >= latest - reach]
    totals = [o.total_s for o in span if o.total_s is not None]
    covered = state.onsets[0].percent <= latest - reach
    if len(totals) < 3 or not covered:
        return False
    return (max(totals) - min(totals)) / statistics.median(totals) <= STABLE_SPREAD


def _linear(state: Estimator, percent: float, print_s: float) -> float | None:
    """Linear time left, counted down since the latest onset; None until stable."""
    if not _stable(state, percent):
        return None
    latest = state.onsets[-1]
    assert latest.total_s is not None  # checked by _stable
    left_at_onset = latest.total_s - latest.print_s
    if latest.percent >= 100.0 or left_at_onset <= 0.0:
        return 0.0
    rate = (100.0 - latest.percent) / left_at_onset  # percent per print second
    next_step = min(100.0, latest.percent + (state.step or 1.0))
    floor = (100.0 - next_step) / rate
    return max(left_at_onset - (print_s - latest.print_s), floor, 0.0)


def _from_history(history: Sequence[float], percent: float, print_s: float) -> float | None:
    total = history_total(history)
    if total is None or print_s >= total:
        return None
    if abs(100.0 * print_s / total - percent) > HISTORY_FIT:
        return None  # this print does not run like the earlier ones
    return total - print_s


def _combine(linear: float | None, history: float | None, percent: float) -> Estimate:
    if linear is not None and history is not None:
        weight = min(1.0, max(0.0, percent / 100.0))
        return Estimate((1.0 - weight) * history + weight * linear, "mixed")
    if history is not None:
        return Estimate(history, "history")
    if linear is not None:
        return Estimate(linear, "linear")
    return Estimate(None, "none")
