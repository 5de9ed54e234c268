"""SQLite storage of the reference API server: records deduped by id, commands and results,
and the compact status history behind the web app's charts.

Retention (architecture §4.5, issue 13): 100 printers at 1 Hz send 8.6 million statuses a
day, so a status is kept three ways, each as long as it earns its space:

* its full body in ``records`` for ``RAW_STATUS_S`` (an hour: what ``GET /v1/records``
  lists, for debugging a gateway), and the newest per printer in ``latest_status`` for ever;
* a compact sample (state, temperatures, progress: about 60 bytes) in ``samples`` at full
  rate for ``full_rate_s`` (a day by default);
* after that, one sample per printer per ``step_s`` (a minute by default) in ``history``,
  the last of each step, for ever (or ``history_s``).

Events, jobs and command results are kept for ever. ``retain`` does one bounded pass of
this; the server runs it every minute on its own connection. Both sample tables are
clustered by (gateway, printer, time), so a chart of a printer's last hours is one range
scan however many years the file holds.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from gateway import sqlite
from gateway.messages import (
    Command,
    CommandResult,
    CommandState,
    NewCommand,
    Record,
    Status,
    json_encoder,
    utc_text,
)

MAX_OPEN_LISTED = 1000  # commands per answer to GET /v1/commands
RAW_STATUS_S = 3600.0  # full status bodies kept this long (the samples keep the rest)
DELETE_CHUNK = 20_000  # rows per retention transaction: the writer never waits long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    gateway_id TEXT NOT NULL,
    printer_id TEXT,
    seq INTEGER,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_printer ON records(gateway_id, printer_id, seq);
CREATE TABLE IF NOT EXISTS latest_status (
    gateway_id TEXT NOT NULL,
    printer_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (gateway_id, printer_id)
);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    gateway_id TEXT NOT NULL,
    printer_id TEXT NOT NULL,
    type TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    outcome TEXT,
    detail TEXT,
    result_at REAL
);
CREATE INDEX IF NOT EXISTS commands_open ON commands(gateway_id, outcome);
CREATE INDEX IF NOT EXISTS commands_by_printer ON commands(gateway_id, printer_id);
CREATE INDEX IF NOT EXISTS records_by_kind_age ON records(kind, received_at);
CREATE INDEX IF NOT EXISTS records_jobs ON records(gateway_id, printer_id, received_at)
    WHERE kind = 'job';
"""
# The charts' two tables, one shape: `samples` at full rate for the recent hours, `history`
# one sample per step after that (retention moves rows from the first to the second).
_CHART_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    gateway_id TEXT NOT NULL,
    printer_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    nozzle REAL, nozzle_target REAL, bed REAL, bed_target REAL, progress REAL,
    PRIMARY KEY (gateway_id, printer_id, ts_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {name}_age ON {name}(ts_ms);
"""
_SCHEMA += _CHART_TABLE.format(name="samples") + _CHART_TABLE.format(name="history")
SAMPLE_COLUMNS = "ts_ms, state, nozzle, nozzle_target, bed, bed_target, progress"


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """One point of a printer's chart: ms since the epoch, state, nozzle and bed (measured,
    target, °C) and progress (%); null where the status had none."""

    ts_ms: int
    state: str
    nozzle: float | None
    nozzle_target: float | None
    bed: float | None
    bed_target: float | None
    progress: float | None


CHART_COLUMNS = tuple(Sample.__struct_fields__)


class Chart(msgspec.Struct, frozen=True):
    """Answer to ``GET /v1/printers/{gateway}/{printer}/statuses``: the points, each an
    array in the order of ``columns``."""

    columns: tuple[str, ...]
    statuses: list[Sample]


class CommandHistory(msgspec.Struct, frozen=True):
    """Answer to ``GET /v1/printers/{gateway}/{printer}/commands``."""

    commands: list[CommandState]


class Retained(msgspec.Struct, frozen=True):
    """What one retention pass did."""

    downsampled: int  # full-rate samples folded into history rows
    raw_deleted: int  # full status bodies past RAW_STATUS_S
    history_deleted: int  # history past history_s


def _sample_row(gateway_id: str, status: Status) -> tuple[object, ...]:
    nozzle, bed = status.nozzle, status.bed
    return (
        gateway_id,
        status.printer_id,
        int(status.ts.timestamp() * 1000),
        status.state,
        None if nozzle is None else nozzle.current,
        None if nozzle is None else nozzle.target,
        None if bed is None else bed.current,
        None if bed is None else bed.target,
        status.progress_percent,
    )


class Store:
    """One SQLite file; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path, synchronous="NORMAL", any_thread=True)
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(latest_status)")}
        if "received_at" not in columns:  # a file of an older version: when is unknown (0)
            self._conn.execute(
                "ALTER TABLE latest_status ADD COLUMN received_at REAL NOT NULL DEFAULT 0"
            )

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def store_records(self, gateway_id: str, records: tuple[Record, ...]) -> tuple[int, int]:
        """Insert new records (a known id is ignored); returns (stored, duplicates)."""
        now = time.time()
        rows = [
            (
                r.id,
                gateway_id,
                r.printer_id,
                r.seq,
                type(r).__struct_config__.tag,
                json_encoder.encode(r),
                now,
            )
            for r in records
        ]
        # The newest status per printer by its ts (statuses carry no seq: the live lane); the
        # table's `seq` column holds that ts in milliseconds.
        newest: dict[str, tuple[int, bytes]] = {}
        samples = []
        for record, row in zip(records, rows, strict=True):
            if isinstance(record, Status) and record.printer_id is not None:
                order = int(record.ts.timestamp() * 1000)
                if record.printer_id not in newest or order > newest[record.printer_id][0]:
                    newest[record.printer_id] = (order, row[5])
                samples.append(_sample_row(gateway_id, record))
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
            stored = self._conn.total_changes - before
            self._conn.executemany(
                "INSERT INTO latest_status VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                "SET seq = excluded.seq, body = excluded.body, received_at = excluded.received_at"
                " WHERE excluded.seq > seq",
                [(gateway_id, p, seq, body, now) for p, (seq, body) in newest.items()],
            )
            self._conn.executemany(
                f"INSERT OR IGNORE INTO samples (gateway_id, printer_id, {SAMPLE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                samples,
            )
            self._conn.executemany(
                "UPDATE commands SET outcome = ?, detail = ?, result_at = ? "
                "WHERE id = ? AND outcome IS NULL",
                [
                    (r.outcome, r.detail, now, r.command_id)
                    for r in records
                    if isinstance(r, CommandResult)
                ],
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return stored, len(records) - stored

    def add_command(self, command: NewCommand, created_at: str) -> str:
        """Queue a command; returns its id."""
        command_id = command.id or f"c-{uuid.uuid4().hex[:12]}"
        self._conn.execute(
            "INSERT INTO commands (id, gateway_id, printer_id, type, params, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                command_id,
                command.gateway_id,
                command.printer_id,
                command.type,
                msgspec.json.encode(command.params).decode(),
                created_at,
                None if command.expires_at is None else utc_text(command.expires_at),
            ),
        )
        return command_id

    def open_commands(self, gateway_id: str) -> list[Command]:
        """Commands without a result, oldest first (at most MAX_OPEN_LISTED: the rest follow
        as these get results), in the §4.3 shape."""
        rows = self._conn.execute(
            "SELECT id, printer_id, type, params, created_at, expires_at FROM commands "
            "WHERE gateway_id = ? AND outcome IS NULL ORDER BY rowid LIMIT ?",
            (gateway_id, MAX_OPEN_LISTED),
        ).fetchall()
        return [
            Command(
                id=r[0],
                printer_id=r[1],
                type=r[2],
                params=msgspec.json.decode(r[3]),
                created_at=_moment(r[4]),
                expires_at=_moment(r[5]),
            )
            for r in rows
        ]

    def command(self, command_id: str) -> CommandState | None:
        """One command with its result, if any."""
        row = self._conn.execute(
            f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE id = ?", (command_id,)
        ).fetchone()
        return None if row is None else _command_state(row)

    def records(
        self, gateway_id: str, printer_id: str | None, kind: str | None, after_seq: int, limit: int
    ) -> list[bytes]:
        """Stored record bodies, by printer: its statuses in the order they arrived (they have
        no seq: the live lane; listed unless the caller pages by seq), then the rest by seq."""
        sql = (
            "SELECT body FROM records WHERE gateway_id = ? AND (seq > ? OR (seq IS NULL AND ? = 0))"
        )
        args: list[object] = [gateway_id, after_seq, after_seq]
        if printer_id is not None:
            sql += " AND printer_id = ?"
            args.append(printer_id)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        sql += " ORDER BY printer_id, seq IS NOT NULL, seq, rowid LIMIT ?"
        args.append(limit)
        return [row[0] for row in self._conn.execute(sql, args)]

    def latest_statuses(self, gateway_id: str | None) -> list[tuple[str, float, bytes]]:
        """The newest status of every printer of a gateway (of every gateway with None):
        (gateway id, when it was received, its body), by gateway and printer."""
        sql = "SELECT gateway_id, received_at, body FROM latest_status"
        args: tuple[str, ...] = ()
        if gateway_id is not None:
            sql, args = sql + " WHERE gateway_id = ?", (gateway_id,)
        return [
            (row[0], row[1], row[2])
            for row in self._conn.execute(sql + " ORDER BY gateway_id, printer_id", args)
        ]

    def samples(
        self, gateway_id: str, printer_id: str, since_ms: int, until_ms: int, points: int
    ) -> list[Sample]:
        """A printer's chart from `since_ms` to `until_ms`: the history and the full-rate
        samples together, at most about `points` (the last sample of each equal slice)."""
        slice_ms = max(1, (until_ms - since_ms) // max(1, points))
        rows = self._conn.execute(
            f"SELECT max(ts_ms), state, nozzle, nozzle_target, bed, bed_target, progress FROM ("
            f"SELECT {SAMPLE_COLUMNS} FROM history "
            "WHERE gateway_id = ? AND printer_id = ? AND ts_ms >= ? AND ts_ms <= ? UNION ALL "
            f"SELECT {SAMPLE_COLUMNS} FROM samples "
            "WHERE gateway_id = ? AND printer_id = ? AND ts_ms >= ? AND ts_ms <= ?) "
            "GROUP BY ts_ms / ? ORDER BY 1",
            (gateway_id, printer_id, since_ms, until_ms) * 2 + (slice_ms,),
        )
        return [Sample(*row) for row in rows]

    def jobs(self, gateway_id: str, printer_id: str | None, limit: int) -> list[bytes]:
        """Job records, newest first."""
        sql = "SELECT body FROM records WHERE gateway_id = ? AND kind = 'job'"
        args: list[object] = [gateway_id]
        if printer_id is not None:
            sql += " AND printer_id = ?"
            args.append(printer_id)
        sql += " ORDER BY received_at DESC LIMIT ?"
        args.append(limit)
        return [row[0] for row in self._conn.execute(sql, args)]

    def printer_commands(self, gateway_id: str, printer_id: str, limit: int) -> list[CommandState]:
        """A printer's commands with their results, newest first."""
        rows = self._conn.execute(
            f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE gateway_id = ? AND printer_id = ? "
            "ORDER BY rowid DESC LIMIT ?",
            (gateway_id, printer_id, limit),
        ).fetchall()
        return [_command_state(row) for row in rows]

    def retain(
        self, now: float, full_rate_s: float, step_s: float, history_s: float | None = None
    ) -> Retained:
        """One bounded retention pass (see the module's docstring); call it again while it
        reports work done. Each step is its own short transaction."""
        step_ms = max(1, int(step_s * 1000))
        # Whole steps only, so a step is never split between two passes.
        cutoff_ms = int((now - full_rate_s) * 1000) // step_ms * step_ms
        downsampled = 0
        oldest = self._conn.execute("SELECT min(ts_ms) FROM samples").fetchone()[0]
        if oldest is not None and oldest < cutoff_ms:
            low = oldest // step_ms * step_ms
            high = min(cutoff_ms, low + step_ms * max(1, 600_000 // step_ms))  # ~10 minutes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    f"INSERT OR IGNORE INTO history (gateway_id, printer_id, {SAMPLE_COLUMNS}) "
                    "SELECT gateway_id, printer_id, max(ts_ms), state, nozzle, nozzle_target, "
                    "bed, bed_target, progress FROM samples WHERE ts_ms >= ? AND ts_ms < ? "
                    "GROUP BY gateway_id, printer_id, ts_ms / ?",
                    (low, high, step_ms),
                )
                downsampled = self._conn.execute(
                    "DELETE FROM samples WHERE ts_ms >= ? AND ts_ms < ?", (low, high)
                ).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        raw_deleted = self._conn.execute(
            "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records "
            "WHERE kind = 'status' AND received_at < ? LIMIT ?)",
            (now - RAW_STATUS_S, DELETE_CHUNK),
        ).rowcount
        history_deleted = 0
        if history_s is not None:
            history_deleted = self._conn.execute(
                "DELETE FROM history WHERE (gateway_id, printer_id, ts_ms) IN (SELECT "
                "gateway_id, printer_id, ts_ms FROM history WHERE ts_ms < ? LIMIT ?)",
                (int((now - history_s) * 1000), DELETE_CHUNK),
            ).rowcount
        return Retained(downsampled, raw_deleted, history_deleted)


_COMMAND_COLUMNS = (
    "id, gateway_id, printer_id, type, params, created_at, expires_at, outcome, detail"
)


def _command_state(row: tuple[Any, ...]) -> CommandState:
    """A commands row (``_COMMAND_COLUMNS``) as the API answers it."""
    return CommandState(
        id=row[0],
        gateway_id=row[1],
        printer_id=row[2],
        type=row[3],
        params=msgspec.json.decode(row[4]),
        created_at=row[5],
        expires_at=row[6],
        outcome=row[7],
        detail=row[8],
    )


def _moment(text: str | None) -> datetime | None:
    """A stored RFC 3339 time (written by ``utc_text``) as a datetime."""
    return None if text is None else datetime.fromisoformat(text)
