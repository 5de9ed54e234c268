"""Reading a printer (M115 once per connection, then M119, M105, M27) and turning what was
read into the Status record of architecture §4.3."""

from __future__ import annotations

from datetime import datetime

import msgspec

from gateway.messages import PrinterInfo, PrinterState, Progress, Status
from services.poller.link import PrinterLink
from services.poller.protocol import (
    Activity,
    MachineInfo,
    MachineStatus,
    PrintProgress,
    Temperatures,
    parse_m27,
    parse_m105,
    parse_m115,
    parse_m119,
)


class Observation(msgspec.Struct, frozen=True):
    """One complete reading of a printer."""

    machine: MachineStatus
    temperatures: Temperatures
    progress: PrintProgress

    @property
    def activity(self) -> Activity:
        """What the printer is doing (both pause forms are PAUSED)."""
        return self.machine.activity


async def read_info(link: PrinterLink, deadline_s: float) -> MachineInfo:
    """M115: identity (read once per connection and cached by the caller)."""
    return parse_m115((await link.request("M115", deadline_s=deadline_s)).lines)


async def observe(link: PrinterLink, deadline_s: float) -> Observation:
    """M119, M105 and M27 on an open link. Read-only: no control is taken."""
    machine = parse_m119((await link.request("M119", deadline_s=deadline_s)).lines)
    temperatures = parse_m105((await link.request("M105", deadline_s=deadline_s)).lines)
    progress = parse_m27((await link.request("M27", deadline_s=deadline_s)).lines)
    return Observation(machine, temperatures, progress)


_ACTIVITY_STATE: dict[Activity, PrinterState] = {
    Activity.READY: "idle",
    Activity.PRINTING: "printing",
    Activity.PAUSED: "paused",
    Activity.COMPLETED: "completed",
    Activity.UNKNOWN: "error",
}


def printer_state(observation: Observation, job_active: bool) -> PrinterState:
    """The §4.3 state; BUSY (homing, filament moves) counts as printing only inside a job."""
    if observation.activity is Activity.BUSY:
        return "printing" if job_active else "idle"
    return _ACTIVITY_STATE[observation.activity]


def printer_info(name: str, info: MachineInfo | None) -> PrinterInfo:
    """The record's ``printer`` block: the configured name, the rest as M115 reports it."""
    if info is None:
        return PrinterInfo(name=name)
    return PrinterInfo(
        name=name, model=info.machine_type, firmware=info.firmware, serial=info.serial
    )


def status_from_observation(
    *,
    record_id: str,
    printer_id: str,
    ts: datetime,
    observation: Observation,
    state: PrinterState,
    info: PrinterInfo,
    file: str | None,
) -> Status:
    """A Status for a printer that answered."""
    temps = observation.temperatures
    progress = observation.progress
    return Status(
        id=record_id,
        printer_id=printer_id,
        ts=ts,
        state=state,
        nozzle=temps.nozzles[0],
        bed=temps.bed,
        extra_nozzles=temps.nozzles[1:],
        progress_percent=round(progress.percent, 2),
        progress=Progress(done=progress.done, total=progress.total),
        layer=progress.layer,
        file=file,
        printer=info,
    )


def status_without_reading(
    *, record_id: str, printer_id: str, ts: datetime, state: PrinterState, info: PrinterInfo
) -> Status:
    """A Status for a printer that could not be read: every measured value is null."""
    return Status(id=record_id, printer_id=printer_id, ts=ts, state=state, printer=info)
