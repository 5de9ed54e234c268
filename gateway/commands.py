"""Commands as both control and the poller see them: the typed actions, reading one from a
``Command``, the ``[limits]`` check, and the one ``Answer`` a command id gets.

Control checks a command before routing it and the poller checks it again before sending
it (a second fence); both call ``limit_violation``, so they can never disagree. An
``Answer`` is the same struct from the poller's read-back through its journal, the bus and
control's ledger to the ``command_result`` record (``result_record``).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from gateway.config import LimitsSection
from gateway.ids import result_id
from gateway.messages import Command, CommandId, CommandResult, Identifier, Outcome


# Actions are validated input, not wire evolution: unknown params are refused outright.
class _Action(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """A command's type and params, checked for shape (``limit_violation`` checks the values)."""


class Pause(_Action, frozen=True, forbid_unknown_fields=True, tag="pause"):
    """Pause the running print (M25)."""


class Resume(_Action, frozen=True, forbid_unknown_fields=True, tag="resume"):
    """Resume a paused print (M24)."""


class Cancel(_Action, frozen=True, forbid_unknown_fields=True, tag="cancel"):
    """Cancel the running print (M26)."""


class SetNozzleTemperature(
    _Action, frozen=True, forbid_unknown_fields=True, tag="set_nozzle_temperature"
):
    """Set the nozzle target; the firmware takes whole degrees only."""

    celsius: int


class SetBedTemperature(
    _Action, frozen=True, forbid_unknown_fields=True, tag="set_bed_temperature"
):
    """Set the bed target; whole degrees only."""

    celsius: int


class Light(_Action, frozen=True, forbid_unknown_fields=True, tag="light"):
    """Switch the case light."""

    on: bool


Action = Pause | Resume | Cancel | SetNozzleTemperature | SetBedTemperature | Light


def parse_action(command: Command) -> Action:
    """The typed action of a command; msgspec.ValidationError says what is wrong with it."""
    if "type" in command.params:
        raise msgspec.ValidationError("Object contains unknown field `type` - at `$.params`")
    action: Action = msgspec.convert({**command.params, "type": command.type}, Action, strict=True)
    return action


def limit_violation(action: Action, limits: LimitsSection) -> str | None:
    """Why the action is outside ``[limits]``, or None when it is within them."""
    match action:
        case SetNozzleTemperature(celsius=c) if not 0 <= c <= limits.max_nozzle_c:
            return f"nozzle {c} °C outside 0..{limits.max_nozzle_c} °C"
        case SetBedTemperature(celsius=c) if not 0 <= c <= limits.max_bed_c:
            return f"bed {c} °C outside 0..{limits.max_bed_c} °C"
    return None


class Answer(msgspec.Struct, frozen=True):
    """A command's one outcome and the sentence that explains it."""

    command_id: CommandId
    outcome: Outcome
    detail: str


def result_record(
    gateway_id: str,
    printer_id: Identifier | None,
    answer: Answer,
    at: datetime,
    command_type: str | None = None,
) -> CommandResult:
    """The ``command_result`` record of an answer; its id is the same on every re-send."""
    return CommandResult(
        id=result_id(gateway_id, answer.command_id),
        printer_id=printer_id,
        ts=at,
        command_id=answer.command_id,
        outcome=answer.outcome,
        detail=answer.detail,
        command_type=command_type[:64] if command_type else None,
    )
