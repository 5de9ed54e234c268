"""Clocks for decisions that must survive process restarts but not trust the wall clock.

``boot_seconds`` is CLOCK_BOOTTIME: it keeps counting across process restarts (and through
suspend) and never jumps with NTP or a Pi booting without an RTC. It restarts at a reboot,
which ``boot_id`` tells apart.
"""

from __future__ import annotations

import time
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_seconds() -> float:
    """Seconds since boot, monotonic across process restarts."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id() -> str:
    """This boot's id (a reboot makes every boot-clock deadline meaningless)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown-boot"


class BootClock:
    """``boot_seconds`` and ``boot_id`` as one object, so what decides deadlines can be given
    a clock that tests move by hand instead of sleeping."""

    def seconds(self) -> float:
        """Seconds since boot (``boot_seconds``)."""
        return boot_seconds()

    def boot(self) -> str:
        """This boot's id (``boot_id``)."""
        return boot_id()
