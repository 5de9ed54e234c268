"""SQLite storage of the reference API server: records deduped by id, commands and results."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path

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
"""


class Store:
    """One SQLite file; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path, synchronous="NORMAL", any_thread=True)
        self._conn.executescript(_SCHEMA)

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
        for record, row in zip(records, rows, strict=True):
            if isinstance(record, Status) and record.printer_id is not None:
                order = int(record.ts.timestamp() * 1000)
                if record.printer_id not in newest or order > newest[record.printer_id][0]:
                    newest[record.printer_id] = (order, row[5])
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
            stored = self._conn.total_changes - before
            self._conn.executemany(
                "INSERT INTO latest_status VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                "SET seq = excluded.seq, body = excluded.body WHERE excluded.seq > seq",
                [(gateway_id, printer, seq, body) for printer, (seq, body) in newest.items()],
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
            "SELECT id, gateway_id, printer_id, type, params, created_at, expires_at, outcome, "
            "detail FROM commands WHERE id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
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

    def latest_statuses(self, gateway_id: str) -> list[bytes]:
        """The newest status of every printer of a gateway."""
        return [
            row[0]
            for row in self._conn.execute(
                "SELECT body FROM latest_status WHERE gateway_id = ? ORDER BY printer_id",
                (gateway_id,),
            )
        ]


def _moment(text: str | None) -> datetime | None:
    """A stored RFC 3339 time (written by ``utc_text``) as a datetime."""
    return None if text is None else datetime.fromisoformat(text)
