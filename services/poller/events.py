"""Events derived from consecutive readings of one printer, as a pure function of a Belief.

Theory of operation
-------------------
A Belief is what the gateway has *told the API* about a printer: connectivity and the job
(phase, file, start). Each reading (or failure to read) is compared with the Belief; every
difference the API should hear about becomes one event, and the Belief moves with it. The
caller persists the new Belief together with the events it implies, before sending them, so
after a restart the same events are re-sent with the same ids (and deduped downstream)
instead of being derived again or forgotten. Transitions:

  connectivity: unknown/offline/held -> online         printer_online
                unknown/online/held -> offline         printer_offline
                unknown/online/offline -> held         printer_held_by_other_client
                (held: turned away, or a reading that came with another client's
                replies; its job transitions below still apply, the values are true)
  job:          none -> printing|paused                print_started (+ print_paused)
                printing -> paused / paused -> printing print_paused / print_resumed
                active -> COMPLETED                    print_finished
                active -> READY                        print_finished if the counter reached
                                                       its end, else print_cancelled
                active, another file printing          end of the old job, start of the new
                active, offline longer than grace      printer_lost_while_printing (once)
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.messages import EventName
from services.poller.protocol import Activity, Observation

Connectivity = Literal["unknown", "online", "offline", "held"]
JobPhase = Literal["none", "printing", "paused"]


class Belief(msgspec.Struct, frozen=True, kw_only=True):
    """What the API has been told about one printer (persisted by the journal)."""

    connectivity: Connectivity = "unknown"
    job_phase: JobPhase = "none"
    file: str | None = None
    started_at: str | None = None  # RFC 3339, from the print_started event
    lost_reported: bool = False


class Happening(msgspec.Struct, frozen=True):
    """An event to emit: name, file and detail (the caller adds id and timestamps)."""

    event: EventName
    file: str | None = None
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


def _end_of_job(belief: Belief, finished: bool) -> Happening:
    return Happening(
        "print_finished" if finished else "print_cancelled",
        belief.file,
        {"started_at": belief.started_at} if belief.started_at else {},
    )


def _reached_end(observation: Observation, last_percent: float) -> bool:
    progress = observation.progress
    return (progress.total > 0 and progress.done >= progress.total) or last_percent >= 100.0


def on_reading(
    belief: Belief,
    observation: Observation,
    last_percent: float,
    now: str,
    held: bool = False,
) -> tuple[Belief, list[Happening]]:
    """The Belief after a successful reading, and the events on the way there; `held`: the
    reading came with another client's replies (``sharing.py``), so the printer is held."""
    happenings: list[Happening] = []
    connectivity: Connectivity = "held" if held else "online"
    if belief.connectivity != connectivity:
        happenings.append(Happening("printer_held_by_other_client" if held else "printer_online"))
    belief = msgspec.structs.replace(belief, connectivity=connectivity, lost_reported=False)
    activity = observation.activity
    file = observation.machine.current_file
    if activity in (Activity.PRINTING, Activity.PAUSED):
        if belief.job_phase != "none" and file and belief.file and file != belief.file:
            happenings.append(_end_of_job(belief, last_percent >= 100.0))
            belief = msgspec.structs.replace(belief, job_phase="none", file=None, started_at=None)
        if belief.job_phase == "none":
            happenings.append(Happening("print_started", file))
            belief = msgspec.structs.replace(
                belief, job_phase="printing", file=file, started_at=now
            )
        if activity is Activity.PAUSED and belief.job_phase == "printing":
            happenings.append(Happening("print_paused", belief.file))
            belief = msgspec.structs.replace(belief, job_phase="paused")
        elif activity is Activity.PRINTING and belief.job_phase == "paused":
            happenings.append(Happening("print_resumed", belief.file))
            belief = msgspec.structs.replace(belief, job_phase="printing")
    elif activity in (Activity.COMPLETED, Activity.READY) and belief.job_phase != "none":
        finished = activity is Activity.COMPLETED or _reached_end(observation, last_percent)
        happenings.append(_end_of_job(belief, finished))
        belief = msgspec.structs.replace(belief, job_phase="none", file=None, started_at=None)
    return belief, happenings


def on_failure(
    belief: Belief,
    verdict: Literal["offline", "held"],
    unreachable_for_s: float,
    lost_grace_s: float,
) -> tuple[Belief, list[Happening]]:
    """The Belief after the printer could not be read, and the events on the way there."""
    happenings: list[Happening] = []
    if belief.connectivity != verdict:
        name: EventName = (
            "printer_offline" if verdict == "offline" else "printer_held_by_other_client"
        )
        happenings.append(Happening(name))
        belief = msgspec.structs.replace(belief, connectivity=verdict)
    if (
        verdict == "offline"
        and belief.job_phase != "none"
        and not belief.lost_reported
        and unreachable_for_s >= lost_grace_s
    ):
        happenings.append(
            Happening(
                "printer_lost_while_printing",
                belief.file,
                {"unreachable_s": round(unreachable_for_s, 1)},
            )
        )
        belief = msgspec.structs.replace(belief, lost_reported=True)
    return belief, happenings
