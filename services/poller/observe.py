"""Reading a printer: M115 once per connection, then M119, M105, M27 each cycle (read-only)."""

from __future__ import annotations

from services.poller.link import PrinterLink
from services.poller.protocol import (
    MachineInfo,
    Observation,
    parse_m27,
    parse_m105,
    parse_m115,
    parse_m119,
)


async def read_info(link: PrinterLink, deadline_s: float) -> MachineInfo:
    """M115: identity (read once per connection and cached by the caller)."""
    return parse_m115((await link.request("M115", deadline_s=deadline_s)).lines)


async def observe(link: PrinterLink, deadline_s: float) -> Observation:
    """M119, M105 and M27 on an open link. Read-only: no control is taken."""
    machine = parse_m119((await link.request("M119", deadline_s=deadline_s)).lines)
    temperatures = parse_m105((await link.request("M105", deadline_s=deadline_s)).lines)
    progress = parse_m27((await link.request("M27", deadline_s=deadline_s)).lines)
    return Observation(machine, temperatures, progress)
