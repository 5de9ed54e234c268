"""Long-lived loops that survive any exception of one iteration, and how they back off.

A loop that serves for months must not die of one bad value. ``LoopGuard`` is what each
loop calls around one iteration: an exception the code did not expect is logged once per
streak (with its traceback: it is a bug or a surprise worth fixing), reported as a problem
for ``status`` (``loop <name> failing``), and answered with a pause that doubles up to a cap,
so a persistent fault neither spins the CPU nor floods the log. The first success after a
streak logs the recovery and clears the problem. A loop that ends for any reason other
than its stop signal reports itself ``dead``. Every doubling delay here is computed by
``doubling``, which never overflows however long a failure lasts (a loop that fails for a
year must still be able to say how long to wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Awaitable, Callable

from gateway.health import Problems

logger = logging.getLogger(__name__)


def doubling(base_s: float, n: int, cap_s: float) -> float:
    """``base_s * 2**n``, never above ``cap_s``; the exponent is clamped so it never overflows."""
    return float(min(cap_s, base_s * 2 ** min(max(n, 0), 64)))


class Backoff:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**n)); reset on success."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        ceiling = doubling(self.base_s, self.failures, self.cap_s)
        self.failures += 1
        return random.uniform(0.0, ceiling)

    def reset(self) -> None:
        """A success: start again from the base."""
        self.failures = 0


class LoopGuard:
    """Bookkeeping of one loop's unexpected failures (see the module doc)."""

    def __init__(
        self, name: str, problems: Problems, *, base_s: float = 0.5, cap_s: float = 30.0
    ) -> None:
        self.name = name
        self.problems = problems
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0
        self.key = f"loop {name}"

    def failed(self, err: BaseException) -> float:
        """Count a failure; returns how long to pause before the next iteration."""
        self.failures += 1
        if self.failures == 1:
            logger.error("%s: unexpected error, retrying with backoff", self.name, exc_info=err)
        self.problems.report(self.key, f"{self.name} failing: {type(err).__name__}: {err}")
        return doubling(self.base_s, self.failures - 1, self.cap_s)

    def succeeded(self) -> None:
        """An iteration went through: a failure streak is over."""
        if self.failures:
            logger.info("%s: working again after %d failures", self.name, self.failures)
            self.failures = 0
            self.problems.clear(self.key)

    def ended(self, stopping: bool) -> None:
        """The loop returned: fine when it was asked to stop, else it is dead."""
        if not stopping:
            logger.error("%s: loop ended unexpectedly", self.name)
            self.problems.report(self.key, f"{self.name} is dead: its loop ended")


async def guarded_loop(
    guard: LoopGuard, step: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Run `step` until `stop` is set; an exception pauses (growing) and the loop goes on."""
    try:
        while not stop.is_set():
            try:
                await step()
            except Exception as err:  # noqa: BLE001 - the top of a long-lived loop
                delay = guard.failed(err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                guard.succeeded()
    finally:
        guard.ended(stop.is_set())


def guarded_thread_loop(
    guard: LoopGuard, step: Callable[[], float | None], stopping: threading.Event
) -> None:
    """The threaded twin of ``guarded_loop``: run `step` until `stopping` is set, pausing
    for the delay it returns (None: go on at once) or, after an exception, the guard's."""
    try:
        while not stopping.is_set():
            try:
                delay = step()
            except Exception as err:  # noqa: BLE001 - the top of a long-lived loop
                delay = guard.failed(err)
            else:
                guard.succeeded()
            if delay:
                stopping.wait(delay)
    finally:
        guard.ended(stopping.is_set())
