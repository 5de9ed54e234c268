"""Time-left error (issue 13): ``python -m benchmarks.estimate``.

Simulated prints with a heating phase (progress 0 while the heaters climb), a slow first
layer, a rate that varies along the file, and a percentage reported in whole steps, read
every ``--poll`` seconds. Each is run through the job tracker (``services.poller.jobs``, for
print time without warm-up and pauses) and the estimator (``services.poller.estimate``),
exactly as the poller would. Error = |predicted - actual| / actual remaining print time, at
the reading where the progress first reaches 10, 25, 50 and 75 %. The baseline, computed in
the same run from the same readings, is the naive linear guess: time since the start of the
job x (100 - p) / p. Target: under 15 % from 25 % on, and better than linear at every mark.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

from services.poller.estimate import MARKS, Estimator, errors_after, estimate
from services.poller.jobs import Ended, Moment, OpenJob, Sighting, observe, times
from services.poller.protocol import Activity

FIRST_LAYER = 0.015  # fraction of the file in the first layer, printed at FIRST_LAYER_SPEED
FIRST_LAYER_SPEED = 0.4


@dataclass(frozen=True)
class Case:
    """One simulated print."""

    duration_s: float  # extrusion time, the truth the estimate aims at
    warmup_s: float
    step: float  # percent per reported step
    history: bool
    pause_at: float | None  # fraction of the file where it pauses
    pause_s: float
    seed: int


def _profile(case: Case) -> list[tuple[float, float]]:
    """(fraction of file, print seconds) at segment ends: slow first layer, varied rates."""
    rng = random.Random(case.seed)
    segments = [(FIRST_LAYER, FIRST_LAYER / FIRST_LAYER_SPEED)]
    done = FIRST_LAYER
    while done < 1.0:
        size = min(1.0 - done, rng.uniform(0.01, 0.05))
        speed = math.exp(rng.gauss(0.0, 0.3))  # infill fast, perimeters and details slow
        segments.append((size, size / speed))
        done += size
    scale = case.duration_s / sum(cost for _, cost in segments)
    points, fraction, seconds = [(0.0, 0.0)], 0.0, 0.0
    for size, cost in segments:
        fraction, seconds = fraction + size, seconds + cost * scale
        points.append((fraction, seconds))
    return points


def _fraction_at(points: list[tuple[float, float]], print_s: float) -> float:
    for (f0, t0), (f1, t1) in itertools.pairwise(points):
        if print_s <= t1:
            return f0 + (f1 - f0) * (print_s - t0) / (t1 - t0)
    return 1.0


def _readings(case: Case, poll_s: float) -> Iterator[tuple[float, Sighting]]:
    """(seconds since start, what the printer shows) every poll, until it completes."""
    points = _profile(case)
    clock, printed, paused_left = 0.0, 0.0, case.pause_s if case.pause_at is not None else 0.0
    while True:
        fraction = _fraction_at(points, printed)
        if clock < case.warmup_s:
            sighting = Sighting(activity=Activity.PRINTING, file="part.gx", heating=True)
        elif fraction >= 1.0:
            yield clock, Sighting(activity=Activity.COMPLETED, file="part.gx", percent=100.0)
            return
        else:
            percent = math.floor(fraction * 100.0 / case.step + 1e-9) * case.step
            pausing = case.pause_at is not None and fraction >= case.pause_at and paused_left > 0
            activity = Activity.PAUSED if pausing else Activity.PRINTING
            sighting = Sighting(activity=activity, file="part.gx", percent=percent)
            if pausing:
                paused_left -= poll_s
            else:
                printed += poll_s
        yield clock, sighting
        clock += poll_s


def run(case: Case, poll_s: float) -> dict[float, tuple[float | None, float]]:
    """Per mark: (our error or None when we gave no number, the naive linear error)."""
    rng = random.Random(case.seed + 1)
    history = [case.duration_s * rng.uniform(0.97, 1.03) for _ in range(3)] if case.history else []
    job: OpenJob | None = None
    state = Estimator()
    naive: dict[float, tuple[float, float]] = {}  # mark -> (print_s then, naive remaining)
    final_print_s = 0.0
    for clock, sighting in _readings(case, poll_s):
        at = Moment(clock, 1_800_000_000.0 + clock)
        step = observe(job, sighting, at, make_id=lambda _: "job")
        for change in step.changes:
            if isinstance(change, Ended):
                final_print_s = change.summary.print_s
        job = step.job
        if job is None or job.phase != "printing":
            continue
        print_s = times(job, at).print_s
        state, _ = estimate(state, sighting.percent, print_s, history)
        for mark in MARKS:
            if sighting.percent >= mark and mark not in naive:
                naive[mark] = (print_s, clock * (100.0 - sighting.percent) / sighting.percent)
    ours = {e.percent: e.error for e in errors_after(state, final_print_s)}
    result = {}
    for mark, (print_s, guess) in naive.items():
        actual = final_print_s - print_s
        result[mark] = (ours.get(mark), abs(guess - actual) / actual)
    return result


def cases(seeds: int) -> Iterator[Case]:
    """Prints of 20 min, 2 h and 7 h; steps of 1 % and 5 %; with and without history; with
    and without a 15-minute pause at 40 %; warm-up 2-6 min."""
    for duration in (1_200.0, 7_200.0, 25_200.0):
        for step in (1.0, 5.0):
            for history in (False, True):
                for pause in (False, True):
                    for seed in range(seeds):
                        yield Case(
                            duration_s=duration,
                            warmup_s=120.0 + 240.0 * random.Random(seed).random(),
                            step=step,
                            history=history,
                            pause_at=0.4 if pause else None,
                            pause_s=900.0,
                            seed=seed * 1000 + int(duration) + int(step),
                        )


def _row(label: str, results: list[dict[float, tuple[float | None, float]]]) -> str:
    """Per mark: our mean error (where we gave a number), the naive one (every print), the
    ratio on the prints where we gave a number, and how often we did."""
    cells = []
    for mark in MARKS:
        pairs = [r[mark] for r in results if mark in r]
        given = [(e, n) for e, n in pairs if e is not None]
        naive = statistics.fmean(n for _, n in pairs)
        if given:
            ours = statistics.fmean(e for e, _ in given)
            ratio = statistics.fmean(n for _, n in given) / ours
            cells.append(
                f"{100 * ours:6.1f} {100 * naive:7.1f} {ratio:5.1f}x {len(given) / len(pairs):4.0%}"
            )
        else:
            cells.append(f"{'-':>6} {100 * naive:7.1f} {'-':>6} {0:4.0%}")
    return f"{label:<28}" + " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between readings")
    args = parser.parse_args()
    groups: dict[str, list[dict[float, tuple[float | None, float]]]] = {}
    for case in cases(args.seeds):
        length = (
            f"{case.duration_s / 60:g} min"
            if case.duration_s < 3600
            else f"{case.duration_s / 3600:g} h"
        )
        label = (
            f"{length:>6} step {case.step:g}% {'hist' if case.history else '    '}"
            f"{' pause' if case.pause_at is not None else ''}"
        )
        result = run(case, args.poll)
        groups.setdefault(label, []).append(result)
        groups.setdefault("all, no history", []).extend([] if case.history else [result])
        groups.setdefault("all, with history", []).extend([result] if case.history else [])
        groups.setdefault("ALL", []).append(result)
    head = " | ".join(f"{f'at {m:g} %':^27}" for m in MARKS)
    print("mean error % at each mark: ours | naive | naive/ours on the same prints | answered")
    print(f"{'':<28}{head}")
    for label in sorted(groups, key=lambda g: (g.startswith(("all", "ALL")), _minutes(g), g)):
        print(_row(label, groups[label]))
    print(_verdict(groups["ALL"]))


def _minutes(label: str) -> float:
    number, unit = [*label.split(), "", ""][:2]
    try:
        return float(number) * (60.0 if unit == "h" else 1.0)
    except ValueError:
        return 0.0


def _verdict(results: list[dict[float, tuple[float | None, float]]]) -> str:
    """The targets, over every print of the run."""
    lines = []
    for mark in MARKS:
        given = [(e, n) for e, n in (r[mark] for r in results if mark in r) if e is not None]
        ours = statistics.fmean(e for e, _ in given)
        naive = statistics.fmean(n for _, n in given)  # on the same prints
        under = mark < 25.0 or ours < 0.15
        verdict = "ok" if under and ours < naive else "MISSED"
        lines.append(
            f"at {mark:g} %: ours {100 * ours:.1f} % vs naive {100 * naive:.1f} % on the same "
            f"{len(given)} prints ({naive / ours:.1f}x better): {verdict}"
        )
    return "\n".join(["target: < 15 % from 25 % on, better than naive at every mark", *lines])


if __name__ == "__main__":
    main()
