"""Record ids: unique across restarts without trusting the wall clock, stable across re-sends.

Every record id is made here, and the one kind that is read back (a command result's, to
learn which command the uplink acknowledged) is parsed here too.
"""

from __future__ import annotations

import itertools
import secrets


class RecordIds:
    """``<gateway>:<scope>:<boot token>:<n>``; the random boot token separates process lives."""

    def __init__(self, gateway_id: str, scope: str) -> None:
        self._prefix = f"{gateway_id}:{scope}:{secrets.token_hex(6)}"
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new id, never returned before by any process."""
        return f"{self._prefix}:{next(self._counter)}"


def result_id(gateway_id: str, command_id: str) -> str:
    """``<gateway>:result:<command id>``: the one record id of a command's result."""
    return f"{gateway_id}:result:{command_id}"


def command_of_result(gateway_id: str, record_id: str) -> str | None:
    """The command id a result record id names, or None for any other record id."""
    prefix = result_id(gateway_id, "")
    return record_id.removeprefix(prefix) if record_id.startswith(prefix) else None


def legacy_pause_id(printer_id: str, print_no: int) -> str:
    """The command id of the pause a legacy API asks for (HTTP 418): one per print."""
    return f"legacy-418:{printer_id}:{print_no}"
