"""The control ledger: every command id with its state, in ``<data_dir>/control/ledger.db``.

Theory of operation
-------------------
A command id moves received -> handed -> answered -> reported, each step committed before
the next action: ``handed`` before the first request to the poller, ``answered`` as soon as
an outcome exists, ``reported`` when the uplink acknowledged the command_result record.
So after a restart of control:

* received (never handed): not executed anywhere; expires or is handed as usual;
* handed (no answer yet): asked again with the *same* id; the poller answers from its
  journal if it ran it, and refuses to start it past its deadline;
* answered (not reported): the same result record (same id) is sent again.

A repeated id from the API is never admitted twice. Deadlines are on the boot clock
(CLOCK_BOOTTIME) with the boot id, so neither a wrong wall clock nor a restart of control
can stretch or skip them; a reboot expires whatever was pending. The ledger owns that
clock (``clock.BootClock``, replaced in tests) and answers every question about time left.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import msgspec

from gateway import sqlite
from gateway.clock import BootClock
from gateway.commands import Answer
from gateway.messages import Command

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
State = Literal["received", "handed", "answered", "reported"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    printer_id TEXT NOT NULL,
    type TEXT NOT NULL,
    params BLOB NOT NULL,
    boot_id TEXT NOT NULL,
    deadline REAL NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    detail TEXT,
    answered_at TEXT
);
CREATE INDEX IF NOT EXISTS commands_state ON commands(state);
"""
_COLUMNS = "id, printer_id, type, params, boot_id, deadline, state, outcome, detail, answered_at"


@dataclass(frozen=True)
class Deadline:
    """A moment on one boot's clock."""

    boot_id: str
    at: float


@dataclass(frozen=True)
class Entry:
    """One command as the ledger knows it."""

    command: Command
    boot_id: str
    deadline: float
    state: State
    answer: Answer | None
    answered_at: str | None


class Ledger:
    """SQLite ledger; every change is one committed statement."""

    def __init__(self, path: Path, clock: BootClock | None = None) -> None:
        self.clock = clock or BootClock()
        # FULL: a state is committed before acting on it. Any thread: LedgerThread's worker.
        self._conn = sqlite.connect(path, any_thread=True)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def expired(self, entry: Entry) -> bool:
        """Past its deadline, or admitted before a reboot."""
        return entry.boot_id != self.clock.boot() or self.clock.seconds() >= entry.deadline

    def seconds_left(self, entry: Entry) -> float:
        """Time left before the deadline (0 when expired)."""
        return 0.0 if self.expired(entry) else max(0.0, entry.deadline - self.clock.seconds())

    def overdue(self, entry: Entry, by_s: float) -> bool:
        """More than `by_s` past its deadline on this boot's clock."""
        return self.clock.seconds() > entry.deadline + by_s

    def deadline_after(self, ttl_s: float) -> Deadline:
        """`ttl_s` from now on the boot clock (taken when the command is seen, not when a
        worker thread gets to write it)."""
        return Deadline(self.clock.boot(), self.clock.seconds() + ttl_s)

    def admit(self, command: Command, deadline: Deadline) -> tuple[Entry, bool]:
        """Record a fetched command once; returns its entry and whether it is new (a known
        id keeps its first deadline)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO commands "
            "(id, printer_id, type, params, boot_id, deadline, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'received')",
            (
                command.id,
                command.printer_id,
                command.type,
                msgspec.json.encode(command.params),
                deadline.boot_id,
                deadline.at,
            ),
        )
        entry = self.get(command.id)
        if entry is None:
            raise RuntimeError(f"ledger lost command {command.id} right after inserting it")
        return entry, cursor.rowcount == 1

    def get(self, command_id: str) -> Entry | None:
        """The entry of a command id."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE id = ?",
            (command_id,),
        ).fetchone()
        return None if row is None else _entry(row)

    def in_state(self, *states: State) -> list[Entry]:
        """Entries in any of these states, oldest first."""
        marks = ",".join("?" * len(states))
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM commands WHERE state IN ({marks}) ORDER BY rowid",
            states,
        ).fetchall()
        return [_entry(row) for row in rows]

    def handed(self, command_id: str) -> None:
        """About to ask the poller for the first time (committed before asking)."""
        self._conn.execute(
            "UPDATE commands SET state = 'handed' WHERE id = ? AND state = 'received'",
            (command_id,),
        )

    def answer(self, answer: Answer, at: str) -> None:
        """The command's one answer (a later answer never replaces it)."""
        self._conn.execute(
            "UPDATE commands SET state = 'answered', outcome = ?, detail = ?, answered_at = ? "
            "WHERE id = ? AND state IN ('received', 'handed')",
            (answer.outcome, answer.detail, at, answer.command_id),
        )

    def reported(self, command_id: str) -> None:
        """The uplink made the result durable."""
        self._conn.execute(
            "UPDATE commands SET state = 'reported' WHERE id = ? AND state = 'answered'",
            (command_id,),
        )


def _entry(row: tuple[Any, ...]) -> Entry:
    command = Command(id=row[0], printer_id=row[1], type=row[2], params=msgspec.json.decode(row[3]))
    answer = None if row[7] is None else Answer(row[0], row[7], row[8] or "")
    return Entry(command, row[4], row[5], row[6], answer, row[9])


class LedgerThread:
    """Runs ledger calls for the event loop on one worker thread: a commit (an fsync, tens of
    milliseconds on an SD card) never stalls the loop, and calls run in the order they were
    made, so a command's ``answered`` is always written before its ``reported``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def __call__(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``call(*args, **kwargs)`` on the worker and wait for its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(call, *args, **kwargs))

    def later(self, call: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Queue a call nobody waits for (from a callback that cannot wait); a failure is
        logged (what it would have written is asked again: an unreported result is re-sent
        and acknowledged again)."""
        future = self._worker.submit(call, *args, **kwargs)
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        """Finish the queued calls, then close the database."""
        self._worker.shutdown(wait=True)
        self.ledger.close()


def _log_failure(future: Future[object]) -> None:
    err = future.exception()
    if err is not None:
        logger.error("ledger write failed: %s", err)
