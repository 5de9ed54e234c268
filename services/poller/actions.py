"""Executing one action on an open printer link, then verifying its effect by reading back.

Sequence (protocol doc §3, §10.3): check the action applies to the printer's current state
(else ``rejected``, nothing sent); ``~M601 S1``; the action's G/M-code; ``~M602`` whenever
control was granted, whatever happened in between. If control is refused twice, a second
apart (another client holds it), the bare command is sent once anyway; some firmware obeys
it, and the read-back tells. The effect is then polled for until a deadline: seen ->
``done``, not seen -> ``failed``. Temperatures outside ``[limits]`` are rejected here too,
as a second fence behind control's validation (the same ``limit_violation``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.commands import (
    Action,
    Answer,
    Cancel,
    Light,
    Pause,
    Resume,
    SetBedTemperature,
    SetNozzleTemperature,
    limit_violation,
)
from gateway.config import LimitsSection
from gateway.errors import PrinterIOError, PrinterProtocolError
from services.poller.link import PrinterLink
from services.poller.protocol import (
    Activity,
    parse_ack,
    parse_m105,
    parse_m119,
    parse_m601,
    parse_m602,
)

logger = logging.getLogger(__name__)
DEADLINE_S = 5.0
CONTROL_ATTEMPTS = 2
CONTROL_RETRY_S = 1.0


def _wire(action: Action) -> tuple[str, ...]:
    match action:
        case Pause():
            return ("M25",)
        case Resume():
            return ("M24",)
        case Cancel():
            return ("M26",)
        case SetNozzleTemperature(celsius=celsius):
            return ("M104", f"S{celsius}", "T0")
        case SetBedTemperature(celsius=celsius):
            return ("M140", f"S{celsius}")
        case Light(on=on):
            level = "255" if on else "0"
            return ("M146", f"r{level}", f"g{level}", f"b{level}", "F0")


def not_applicable(action: Action, activity: Activity, limits: LimitsSection) -> str | None:
    """Why the action cannot run now, or None when it can."""
    match action:
        case Pause() if activity is not Activity.PRINTING:
            return f"nothing to pause: printer is {activity.value}"
        case Resume() if activity is not Activity.PAUSED:
            return f"nothing to resume: printer is {activity.value}"
        case Cancel() if activity not in (Activity.PRINTING, Activity.PAUSED):
            return f"nothing to cancel: printer is {activity.value}"
    return limit_violation(action, limits)


async def _effect_seen(link: PrinterLink, action: Action) -> bool | None:
    """Whether the printer now shows the action's effect (None: it cannot tell)."""
    match action:
        case SetNozzleTemperature(celsius=c):
            return parse_m105((await link.request("M105")).lines).nozzles[0].target == c
        case SetBedTemperature(celsius=c):
            bed = parse_m105((await link.request("M105")).lines).bed
            return bed is not None and bed.target == c
    machine = parse_m119((await link.request("M119")).lines)
    match action:
        case Pause():
            return machine.activity is Activity.PAUSED
        case Resume():
            return machine.activity is Activity.PRINTING
        case Cancel():
            return machine.activity not in (Activity.PRINTING, Activity.PAUSED)
        case Light(on=on):
            return None if machine.led is None else machine.led == on
    return None


async def execute_action(
    link: PrinterLink,
    command_id: str,
    action: Action,
    limits: LimitsSection,
    *,
    verify_within_s: float = 5.0,
    before_sending: Callable[[], Awaitable[None]] | None = None,
) -> Answer:
    """Run one action on the printer behind `link` and report what was seen afterwards.
    ``before_sending`` runs (and must have made its mark durable) right before the code that
    changes the printer is sent."""
    activity = parse_m119((await link.request("M119")).lines).activity
    reason = not_applicable(action, activity, limits)
    if reason is not None:
        return Answer(command_id, "rejected", reason)
    code, *args = _wire(action)
    granted = await _take_control(link)
    try:
        if before_sending is not None:  # right before the code: a crash before re-runs cleanly
            await before_sending()
        parse_ack((await link.request(code, *args, deadline_s=DEADLINE_S)).lines)
    finally:
        if granted:
            await _release(link)
    how = "under control" if granted else "bare (control refused: another client holds it)"
    deadline = time.monotonic() + verify_within_s
    while True:
        seen = await _effect_seen(link, action)
        if seen is None:
            return Answer(
                command_id, "failed", f"{code} sent {how}; this printer does not report the effect"
            )
        if seen:
            return Answer(command_id, "done", f"{code} sent {how}; effect verified")
        if time.monotonic() >= deadline:
            return Answer(
                command_id,
                "failed",
                f"{code} sent {how}; effect not seen within {verify_within_s:g}s",
            )
        await asyncio.sleep(0.2)


async def verify_only(link: PrinterLink, command_id: str, action: Action) -> Answer:
    """For a command that may have been sent by a previous life of the poller (killed before
    it wrote the outcome): look, never send again."""
    code = _wire(action)[0]
    seen = await _effect_seen(link, action)
    if seen:
        return Answer(
            command_id, "done", f"{code} was sent before a poller restart; effect verified"
        )
    return Answer(
        command_id, "failed", f"{code} may have been sent before a poller restart; effect not seen"
    )


async def _take_control(link: PrinterLink) -> bool:
    """``~M601 S1``, asked a second time after a pause when refused: the lock of a client
    that vanished (this gateway's own, after a crash) lingers until the printer notices.
    ``Error: have been connected`` counts as granted (our own session lingers on the
    printer); the ``~M602`` after the code ends it, and the read-back decides the outcome."""
    for attempt in range(CONTROL_ATTEMPTS):
        grant = parse_m601((await link.request("M601", "S1")).lines)
        if grant.lingering:
            logger.info("~M601 S1: %r, taken as our own lingering session", grant.text)
        if grant.granted:
            return True
        if attempt + 1 < CONTROL_ATTEMPTS:
            await asyncio.sleep(CONTROL_RETRY_S)
    return False


async def _release(link: PrinterLink) -> None:
    try:
        parse_m602((await link.request("M602")).lines)
    except (PrinterIOError, PrinterProtocolError) as err:
        logger.warning("releasing control (~M602) failed: %s", err)
