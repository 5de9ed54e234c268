"""Waiting for a condition: one sync helper, one async helper, one failure message.

A test waits for something another thread, process or task makes true. Both helpers poll
the condition until it returns something truthy (which they return) and fail at the
deadline with an AssertionError naming what was awaited (``what``, else the condition's
source line or name) and the last value it gave.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None],
    within_s: float = 30.0,
    *,
    every_s: float = 0.1,
    what: str = "",
) -> T:
    """Poll ``condition`` every ``every_s`` until it is truthy (returned) or fail at the deadline."""
    deadline = time.monotonic() + within_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_not_met(condition, within_s, what, value))
        time.sleep(every_s)
    return value


async def wait_until(
    condition: Callable[[], T | None],
    within_s: float = 10.0,
    *,
    every_s: float = 0.02,
    what: str = "",
) -> T:
    """``wait_for`` for async code: the event loop runs while the condition is polled."""
    deadline = time.monotonic() + within_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_not_met(condition, within_s, what, value))
        await asyncio.sleep(every_s)
    return value


def _not_met(condition: Callable[[], object], within_s: float, what: str, last: object) -> str:
    return (
        f"waited {within_s:g} s for {what or _describe(condition)}; last value {_short(repr(last))}"
    )


def _describe(condition: Callable[[], object]) -> str:
    """A lambda by its source line, a function by its name."""
    name = getattr(condition, "__qualname__", "")
    if name and "<lambda>" not in name:
        return name
    try:
        lines, _ = inspect.getsourcelines(condition)
    except (OSError, TypeError):
        return name or repr(condition)
    return _short(" ".join(line.strip() for line in lines))


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
