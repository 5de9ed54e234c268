"""Per-printer durable state of the poller: the Belief, the events not yet acknowledged by the
uplink, and recent command outcomes.

Theory of operation
-------------------
The journal file is rewritten whole, atomically (temp file, fsync, rename, fsync of the
directory), at four moments only: events were derived (new Belief + those events as
pending, *before* they are sent), the uplink acknowledged events (they leave ``pending``),
a command is about to be sent (``sending``), a command finished (its outcome is
remembered). A command still marked ``sending`` after a restart is never sent again: asked
again, the poller only reads the printer back and answers from what it sees.

A poller killed at any point restarts with either the old or the new file, never a torn
one: if the events were derived but not yet written, the next reading derives them again
(same Belief as before); if they were written, they are re-sent with their original ids
and the uplink stores them once. Either way an event is neither lost nor repeated. A
journal that cannot be decoded is moved aside (``.corrupt-<n>``) and the poller starts
from an empty Belief, logging once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from gateway.commands import Answer
from gateway.files import private_dir, set_aside, write_atomically
from gateway.messages import Event
from services.poller.events import Belief

logger = logging.getLogger(__name__)
MAX_REMEMBERED_OUTCOMES = 500


class JournalState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the poller must not forget about one printer."""

    belief: Belief = msgspec.field(default_factory=Belief)
    pending: tuple[Event, ...] = ()
    outcomes: tuple[Answer, ...] = ()  # kept so a repeated id is answered, not re-run
    sending: tuple[str, ...] = ()  # command ids about to be sent, not yet answered


_decoder = msgspec.json.Decoder(JournalState)
_encoder = msgspec.json.Encoder()


class Journal:
    """The state file of one printer, ``<data_dir>/poller/<printer_id>.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = self._load()

    def _load(self) -> JournalState:
        try:
            return _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return JournalState()
        except (msgspec.DecodeError, OSError) as err:
            aside = set_aside(self.path)
            logger.error(
                "poller journal %s unreadable (%s); moved to %s, starting fresh",
                self.path,
                err,
                aside,
            )
            return JournalState()

    def record_events(self, belief: Belief, events: list[Event]) -> None:
        """Persist a new Belief with the events it implies, before they are sent."""
        self._write(
            msgspec.structs.replace(
                self.state, belief=belief, pending=(*self.state.pending, *events)
            )
        )

    def acknowledge(self, ids: set[str]) -> None:
        """The uplink made these records durable: they leave the pending list."""
        remaining = tuple(event for event in self.state.pending if event.id not in ids)
        if len(remaining) != len(self.state.pending):
            self._write(msgspec.structs.replace(self.state, pending=remaining))

    def outcome(self, command_id: str) -> Answer | None:
        """The remembered outcome of a command id, if it ran before."""
        return next((o for o in self.state.outcomes if o.command_id == command_id), None)

    def remember(self, outcome: Answer) -> None:
        """Persist a command's outcome (the newest MAX_REMEMBERED_OUTCOMES are kept)."""
        outcomes = (*self.state.outcomes, outcome)[-MAX_REMEMBERED_OUTCOMES:]
        sending = tuple(c for c in self.state.sending if c != outcome.command_id)
        self._write(msgspec.structs.replace(self.state, outcomes=outcomes, sending=sending))

    def mark_sending(self, command_id: str) -> None:
        """A command's code is about to go to the printer (durable before it does)."""
        self._write(msgspec.structs.replace(self.state, sending=(*self.state.sending, command_id)))

    def was_sending(self, command_id: str) -> bool:
        """Whether a previous life of the poller may have sent this command without answering."""
        return command_id in self.state.sending

    def _write(self, state: JournalState) -> None:
        private_dir(self.path.parent)
        write_atomically(self.path, _encoder.encode(state), durable=True)
        self.state = state
