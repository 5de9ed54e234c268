"""Every Status record of a printer is built here (architecture §4.3): which state a reading
means, which file is shown, and the identity block.

A printer that answered gets its measured values; one that could not be read gets only a
state (offline, held_by_other_client, error: ``failure_kind`` says which) and every
measured value null, never a stale one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from gateway.errors import PrinterUnreachableError, ReplyTooLargeError, UnexpectedPayloadError
from gateway.messages import PrinterInfo, PrinterState, Progress, Status
from services.poller.protocol import Activity, MachineInfo, Observation

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


def status_of_reading(
    *,
    record_id: str,
    printer_id: str,
    ts: datetime,
    observation: Observation,
    job_active: bool,
    info: PrinterInfo,
    held: bool = False,
) -> Status:
    """The Status of a printer that answered; the file is shown while a job is open and on
    the completed screen (an idle printer's last file is not news). `held`: another
    client's replies came with ours, so ``idle``/``completed`` read ``held_by_other_client``
    (with the true values); a print or a pause is still shown as such: what the job does
    matters more to the API than who else watches it, and the event says so once."""
    state = printer_state(observation, job_active)
    if held and state in ("idle", "completed"):
        state = "held_by_other_client"
    temps = observation.temperatures
    progress = observation.progress
    shows_file = job_active or observation.activity is Activity.COMPLETED
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
        file=observation.machine.current_file if shows_file else None,
        printer=info,
    )


def status_without_reading(
    *, record_id: str, printer_id: str, ts: datetime, state: PrinterState, info: PrinterInfo
) -> Status:
    """A Status for a printer that could not be read: every measured value is null."""
    return Status(id=record_id, printer_id=printer_id, ts=ts, state=state, printer=info)


FailureKind = Literal["offline", "held", "error"]
REPORTED_STATE: dict[FailureKind, PrinterState] = {
    "offline": "offline",
    "held": "held_by_other_client",
    "error": "error",
}


def failure_kind(err: Exception) -> FailureKind:
    """What a failed read says about the printer: gone (``offline``), answering for someone
    else (``held``: refused, starved, reset, garbled), or answering nonsense (``error``)."""
    if isinstance(err, UnexpectedPayloadError | ReplyTooLargeError):
        return "error"
    if isinstance(err, PrinterUnreachableError):
        return "offline"
    return "held"
