"""Delivery in the ``legacy`` flavor (architecture §4.4), for web apps written against the
original single-file connector.

One POST per message to ``{url}`` with header ``key: <token>``; values are strings, as the
original sent them. A message goes out for every status of a printer that is printing or
paused; when such a printer stops, exactly one "offline" message follows (``inactive``,
progress ``"0"``, temperatures ``"-"``); which printers are mid-print is remembered in the
queue file so a restart neither repeats nor forgets that message. Events and command results
are not posted in this flavor. An answer 418 means "pause this printer now": it is handed to
``on_pause_request`` with the printer and the number of its current print, so every 418
during one print names the same pause command (``legacy-418:<printer>:<print>``), which
control executes once.

Each queued record is decoded on its own: one that cannot be read is set aside (dead letter)
alone, and a message the server refuses for good (a 4xx other than 401/403/408/429/418) is
skipped alone (a status is never worth stopping the stream for). Retries, 401/403 and
connection failures stop the batch, to be posted again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from gateway.config import Secret
from gateway.http import HttpClient
from gateway.messages import DECODE_ERRORS, Record, Status, Temperature, record_json_decoder
from services.uplink.delivery import Disposition, PostResult, post_once
from services.uplink.queue import Batch

logger = logging.getLogger(__name__)

PauseHook = Callable[[str, int], None]  # (printer id, number of its print since tracking began)
_ACTIVE = ("printing", "paused")


def _temperature(reading: Temperature | None) -> dict[str, str]:
    if reading is None:
        return {"actual": "-", "set": "-"}
    return {"actual": str(round(reading.current)), "set": str(round(reading.target))}


def legacy_message(status: Status, was_active: bool) -> dict[str, Any] | None:
    """The message for one status, or None when the original would have sent nothing."""
    name = status.printer.name or status.printer_id or ""
    if status.state in _ACTIVE:
        return {
            "printer_id": status.printer_id,
            "printer_name": name,
            "printer_status": status.state,
            "printer_progress": str(int(status.progress_percent or 0)),
            "temperature": {"t0": _temperature(status.nozzle), "bed": _temperature(status.bed)},
        }
    if was_active:
        return {
            "printer_id": status.printer_id,
            "printer_name": name,
            "printer_status": "inactive",
            "printer_progress": "0",
            "temperature": {"t0": {"actual": "-", "set": "-"}, "bed": {"actual": "-", "set": "-"}},
        }
    return None


class LegacyState(msgspec.Struct):
    """Kept in the queue file: printers mid-print, and how many prints each has started."""

    active: set[str] = msgspec.field(default_factory=set)
    prints: dict[str, int] = msgspec.field(default_factory=dict)


class LegacyDeliverer:
    """Posts legacy messages; remembers which printers are mid-print."""

    def __init__(
        self,
        url: str,
        token: Secret,
        timeout_s: float,
        state: LegacyState,
        on_pause_request: PauseHook,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client = HttpClient({"key": token.reveal(), "Content-Type": "application/json"})
        self.state = state
        self.on_pause_request = on_pause_request
        self.skipped = 0

    def post(self, batch: Batch) -> PostResult:
        """Send what a claimed batch means in the legacy flavor; stop at the first failure
        that is worth retrying."""
        unreadable: list[int] = []
        for index, body in enumerate(batch.bodies):
            try:
                record: Record = record_json_decoder.decode(body)
            except DECODE_ERRORS as err:
                logger.error("queued record %d cannot be read, set aside: %s", index, err)
                unreadable.append(index)
                continue
            if not isinstance(record, Status) or record.printer_id is None:
                continue
            answer = self._send(record, record.printer_id)
            if answer.disposition is not Disposition.DELIVERED:
                return dataclasses.replace(answer, unreadable=tuple(unreadable))
        return PostResult(
            Disposition.DELIVERED, "legacy messages sent", unreadable=tuple(unreadable)
        )

    def _send(self, record: Status, printer: str) -> PostResult:
        message = legacy_message(record, printer in self.state.active)
        if message is None:
            return PostResult(Disposition.DELIVERED, "nothing to send")
        if record.state in _ACTIVE and printer not in self.state.active:
            self.state.prints[printer] = self.state.prints.get(printer, 0) + 1
        answer = self._post(message)
        if answer.disposition in (Disposition.SPLIT, Disposition.REFUSED):  # this message, for good
            self.skipped += 1
            if self.skipped in (1, 10) or self.skipped % 100 == 0:
                logger.warning("legacy API refused %d messages (%s)", self.skipped, answer.reason)
            answer = PostResult(Disposition.DELIVERED, answer.reason)
        if answer.disposition is Disposition.DELIVERED:
            if record.state in _ACTIVE:
                self.state.active.add(printer)
            else:
                self.state.active.discard(printer)
        return answer

    def _post(self, message: dict[str, Any]) -> PostResult:
        answer = post_once(self.client, self.url, msgspec.json.encode(message), self.timeout_s)
        if answer.status == 418:
            printer = str(message["printer_id"])
            self.on_pause_request(printer, self.state.prints.get(printer, 0))
            return PostResult(Disposition.DELIVERED, "HTTP 418: pause requested")
        return answer

    def close(self) -> None:
        """Close the session (and the hook's socket, if it has one)."""
        self.client.close()
        close_hook = getattr(self.on_pause_request, "close", None)
        if close_hook is not None:
            close_hook()
