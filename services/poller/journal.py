"""Per-printer durable state of the poller: the Belief, the events not yet acknowledged by the
uplink, and recent command outcomes.

Theory of operation
-------------------
The journal file is rewritten whole, atomically (temp file, fsync, rename, fsync of the
directory), at five moments only: events were derived (new Belief + those events, and the
job record of a print that ended, as pending, *before* they are sent, with the open job in
the same write), the uplink acknowledged records (they leave ``pending``), a command is
about to be sent (``sending``), a command finished (its outcome is remembered), and the open
job changed in a way a reboot must not lose (its phase, file, an error). The once-a-minute
checkpoint of a running print's times (``jobs.CHECKPOINT_S``) goes to tmpfs instead
(``write_checkpoint``): it survives SIGKILL of the poller, and after a reboot the job goes on
from its last change with the dark time counted by the wall clock. Nothing is written per
poll, and nothing to the SD card while a print just runs. A command still
marked ``sending`` after a restart is never sent again: asked again, the poller only reads
the printer back and answers from what it sees.

Writes run on a worker thread (an fsync on an SD card can take tens of milliseconds, and
every printer's loop shares the event loop), one at a time per journal: a change is computed
from the current state, written, and only then becomes the current state, under one lock.
So a write that fails leaves the journal as it was (the caller's cycle fails and the next
reading derives the same events again), and two changes never overwrite each other.
Acknowledgements arrive from the record sender's callback, which cannot wait: they are
noted in memory and written by the printer's loop at its next cycle (``settle_acks``);
losing that note to a crash only means the uplink gets those events again, and dedupes them.

A poller killed at any point restarts with either the old or the new file, never a torn
one: if the events were derived but not yet written, the next reading derives them again
(same Belief as before); if they were written, they are re-sent with their original ids
and the uplink stores them once. Either way an event is neither lost nor repeated. A
journal that cannot be decoded is moved aside (``.corrupt-<n>``) and the poller starts
from an empty Belief, logging once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from gateway.commands import Answer
from gateway.files import private_dir, set_aside, write_atomically
from gateway.messages import Event, Job
from services.poller.estimate import Estimator
from services.poller.events import Belief
from services.poller.job_state import FileHistory, JobState
from services.poller.jobs import OpenJob

logger = logging.getLogger(__name__)
MAX_REMEMBERED_OUTCOMES = 500


class JournalState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the poller must not forget about one printer."""

    belief: Belief = msgspec.field(default_factory=Belief)
    pending: tuple[Event | Job, ...] = ()  # derived, not yet acknowledged by the uplink
    outcomes: tuple[Answer, ...] = ()  # kept so a repeated id is answered, not re-run
    sending: tuple[str, ...] = ()  # command ids about to be sent, not yet answered
    job: OpenJob | None = None  # the print under way (jobs.py), dark after a restart
    estimator: Estimator = msgspec.field(default_factory=Estimator)
    boot_id: str = ""  # the boot the job's monotonic times belong to
    history: tuple[FileHistory, ...] = ()  # recent completed prints, for time-left estimates


_decoder = msgspec.json.Decoder(JournalState)
_encoder = msgspec.json.Encoder()
_checkpoint_decoder = msgspec.json.Decoder(JobState)


def write_checkpoint(path: Path, state: JobState) -> None:
    """The open job's periodic checkpoint, on tmpfs (runtime_dir): it survives a restart of
    the poller, not a reboot (the journal keeps the job as of its last change for that).
    A minute's checkpoint on the SD card would be its only write while a print runs."""
    private_dir(path.parent)
    write_atomically(path, _encoder.encode(state))


def read_checkpoint(path: Path) -> JobState | None:
    """A checkpoint left by an earlier life of the poller, or None."""
    try:
        return _checkpoint_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class Journal:
    """The state file of one printer, ``<data_dir>/poller/<printer_id>.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = self._load()
        self._lock = asyncio.Lock()
        self._acked: set[str] = set()

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

    async def record_events(
        self, belief: Belief, events: list[Event | Job], job: JobState | None = None
    ) -> None:
        """Persist a new Belief with the records it implies (events, a job record), and the
        job as it stands after them, before any of them is sent."""

        def change(state: JournalState) -> JournalState:
            state = msgspec.structs.replace(state, belief=belief, pending=(*state.pending, *events))
            if job is not None:
                state = msgspec.structs.replace(state, **msgspec.structs.asdict(job))
            return state

        await self._change(change)

    def acknowledge(self, ids: set[str]) -> None:
        """The uplink made these records durable: noted now, written by ``settle_acks``."""
        self._acked.update(ids & {event.id for event in self.state.pending})

    async def settle_acks(self) -> None:
        """Write the acknowledged events out of ``pending``."""
        if not self._acked:
            return
        acked, self._acked = self._acked, set()
        try:
            await self._change(
                lambda state: msgspec.structs.replace(
                    state, pending=tuple(e for e in state.pending if e.id not in acked)
                )
            )
        except BaseException:
            self._acked |= acked  # written next time
            raise

    def outcome(self, command_id: str) -> Answer | None:
        """The remembered outcome of a command id, if it ran before."""
        return next((o for o in self.state.outcomes if o.command_id == command_id), None)

    async def remember(self, outcome: Answer) -> None:
        """Persist a command's outcome (the newest MAX_REMEMBERED_OUTCOMES are kept)."""
        await self._change(
            lambda state: msgspec.structs.replace(
                state,
                outcomes=(*state.outcomes, outcome)[-MAX_REMEMBERED_OUTCOMES:],
                sending=tuple(c for c in state.sending if c != outcome.command_id),
            )
        )

    async def mark_sending(self, command_id: str) -> None:
        """A command's code is about to go to the printer (durable before it does)."""
        await self._change(
            lambda state: msgspec.structs.replace(state, sending=(*state.sending, command_id))
        )

    def was_sending(self, command_id: str) -> bool:
        """Whether a previous life of the poller may have sent this command without answering."""
        return command_id in self.state.sending

    async def _change(self, change: Callable[[JournalState], JournalState]) -> None:
        """Apply `change` to the current state, durably (see the module's comment). A caller
        cancelled mid-write (a stop) still waits for the write it started, under the lock:
        a thread cannot be stopped, and a second write must never run beside it."""
        async with self._lock:
            state = change(self.state)
            write = asyncio.ensure_future(asyncio.to_thread(self._write, _encoder.encode(state)))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                try:
                    await write
                except OSError as err:  # nobody waits for it now: say so
                    logger.error(
                        "journal %s: a write interrupted by a stop failed: %s", self.path, err
                    )
                else:
                    self.state = state  # it did reach the disk
                raise
            self.state = state

    def _write(self, data: bytes) -> None:
        private_dir(self.path.parent)
        write_atomically(self.path, data, durable=True)
