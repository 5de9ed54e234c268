"""The uplink's durable queue: SQLite in WAL mode under ``<data_dir>/uplink/queue.db``.

Theory of operation
-------------------
* **Two lanes** (architecture §4.3): this file holds the *reliable* lane (events, command
  results) and the statuses the *live* lane spilled while the API was not keeping up
  (``live.py``); on the happy path no status is ever written here.
* **Accept** (one transaction per group of batches): a reliable record whose id is already
  known is acknowledged again but not stored twice (``known_ids`` remembers ids after
  delivery for a week: a poller journal may re-send an event after a long outage). Spilled
  statuses are deduped by the live lane before they get here, and take no known id (fewer
  pages written per spill). A new reliable-lane record gets the next ``seq`` of its scope (its
  printer, or ``""`` for gateway-level records) in the *same* commit that stores it, so a
  seq exists only for a durable record: +1 per scope over the reliable lane, no gaps,
  surviving restarts. A status keeps ``seq: null``. The caller acknowledges to the sender
  only after ``accept`` returned.
* **Cap**: the bodies stored (queue + dead letters) are kept under ``max_queue_mb``; to make
  room the oldest *status* records are deleted, counted in ``dropped_status``. Events and
  command results are never dropped: if they alone exceed the cap they are kept (logged).
* **Claim -> deliver -> delete**: ``claim`` marks up to N records (byte-bounded) with a batch
  id that is the Idempotency-Key for every retry of that batch. Mostly the oldest records,
  plus a share of the newest events, jobs and results so they are not starved behind a
  backlog (statuses are never taken newest first: an outage's arrive in ts order); each
  batch is in commit order, hence in seq order per printer. ``delivered`` deletes the batch,
  ``dead_letter`` moves it to ``dead`` (kept, counted, ``retry`` moves it back with its
  seqs), ``release`` un-claims it. Claims left by a killed uplink are released at open.
* **Damage**: a file that is not a database, is truncated or fails ``quick_check`` is moved
  aside (``queue.db.corrupt-<n>`` with its -wal/-shm), a fresh queue is created, the event
  is counted in the new file (``set_aside``) and logged once. The seq counters were in the
  damaged file, so numbering restarts at 1 after a set-aside (a known limitation).
* A full disk makes ``accept`` raise QueueFullError: the caller does not acknowledge, the
  senders keep their records and retry; nothing crash-loops.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gateway import sqlite
from gateway.bus import InvalidRecord
from gateway.errors import GatewayError
from gateway.files import set_aside
from gateway.messages import Record, Status

logger = logging.getLogger(__name__)
KNOWN_STATUS_TTL_S = 3600  # statuses are re-sent from memory only, within minutes
KNOWN_ID_TTL_S = 7 * 24 * 3600  # events may be re-sent from a poller journal days later
FRESH_SHARE = 0.2  # of each batch reserved for the newest events, jobs and results
RELIABLE_KINDS = ("event", "job", "command_result")  # the reliable lane's record kinds
_encoder = msgspec.json.Encoder()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    accepted_at REAL NOT NULL,
    batch_id TEXT
);
-- Partial: "batch_id = ?" uses it, while "batch_id IS NULL ORDER BY pos" walks the rowid
-- order with a LIMIT instead of sorting the whole backlog.
CREATE INDEX IF NOT EXISTS records_claimed ON records(batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_kind ON records(kind, pos);
CREATE TABLE IF NOT EXISTS dead (
    pos INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    accepted_at REAL NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS known_ids (id TEXT PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS known_ids_age ON known_ids(kind, at);
CREATE TABLE IF NOT EXISTS seqs (scope TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notes (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Notifications owed: written in the commit that stores their event (so a kill after the
-- acknowledgement cannot lose one), deleted once sent; see services/uplink/notify.py.
-- (attempts and next_at are unused: retries are timed in memory, so a failing notification
-- service costs no disk write per attempt.)
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    made_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0
);
"""


class QueueError(GatewayError):
    """The queue cannot do what was asked."""


class QueueFullError(QueueError):
    """The filesystem (or SQLite's page limit) is full: nothing was stored."""


@dataclass(frozen=True)
class OutboxItem:
    """A notification owed: the event's JSON, when it was stored, how often it failed."""

    pos: int
    body: bytes
    made_at: float
    attempts: int


@dataclass(frozen=True)
class Batch:
    """Claimed records: their JSON bodies in order, and the batch id (Idempotency-Key)."""

    batch_id: str
    positions: tuple[int, ...]
    bodies: tuple[bytes, ...]


@dataclass(frozen=True)
class QueueStats:
    """What ``queue stats`` shows."""

    depth_by_kind: dict[str, int]
    bytes: int
    oldest_age_s: float | None
    dead: int
    dropped_status: int
    set_aside: int
    last_delivery: str | None
    last_error: str | None
    # The oldest record of each kind: when it was accepted (Unix seconds), for the metrics.
    oldest_by_kind: dict[str, float] = field(default_factory=dict)


class QueueDamaged(sqlite3.DatabaseError):
    """The queue file is not a sound SQLite database."""


# What says the file itself is bad (SQLite's primary result codes: the low byte of the
# extended ones, so SQLITE_CORRUPT_INDEX is damage and SQLITE_BUSY_RECOVERY a wait). Anything
# else (I/O, a full disk) is a condition of the moment: never a reason to move a queue aside.
_DAMAGE = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_BUSY = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
OPEN_PATIENCE_S = 30.0


def _checked_connection(path: Path) -> sqlite3.Connection:
    """A connection to a sound queue file with the schema in place; QueueDamaged when the
    file is not one. Another connection opening the same new file at the same moment (the
    delivery and notification threads open their own) can hold it locked past the busy
    timeout while it sets WAL mode and the schema: waited for, up to OPEN_PATIENCE_S."""
    deadline = time.monotonic() + OPEN_PATIENCE_S
    while True:
        try:
            return _try_connection(path)
        except QueueDamaged:
            raise
        except sqlite3.DatabaseError as err:
            code = getattr(err, "sqlite_errorcode", 0) & 0xFF
            if code in _DAMAGE:
                raise QueueDamaged(str(err)) from err
            if code not in _BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _try_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite.connect(path, any_thread=True)  # FULL: an ack promises durability
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise QueueDamaged(f"quick_check: {verdict}")
        conn.executescript(_SCHEMA)
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def _statuses_without_seq(conn: sqlite3.Connection) -> None:
    """Statuses queued by a version before the two lanes carry a seq; the live lane's have
    none (and an API checks that): cleared in place, once. A plain open only reads (no write
    lock taken when there is nothing to do); a body that is not JSON is left as it is (the
    API refuses it and it is dead-lettered alone); a failure here is logged, never taken
    for damage: the queue stays as it is."""
    try:
        for table in ("records", "dead"):
            if conn.execute(
                f"SELECT 1 FROM {table} WHERE kind = 'status' AND seq != 0 LIMIT 1"
            ).fetchone():
                conn.execute(
                    f"UPDATE {table} SET seq = 0, body = CAST(json_set(CAST(body AS TEXT), "
                    "'$.seq', json('null')) AS BLOB) "
                    "WHERE kind = 'status' AND seq != 0 AND json_valid(CAST(body AS TEXT))"
                )
    except sqlite3.Error as err:
        logger.warning("statuses queued by an older version keep their seq: %s", err)


class DurableQueue:
    """One connection to the queue file; make one per thread."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._conn = self._open_or_set_aside()
        _statuses_without_seq(self._conn)
        self._stored_bytes = _stored_size(self._conn)
        self._over_cap_logged = False
        self._pruned_at = -1e9
        self._last_error: str | None = None

    # ------------------------------------------------------------------ opening

    def _open_or_set_aside(self) -> sqlite3.Connection:
        try:
            return _checked_connection(self.path)
        except QueueDamaged as err:
            aside = set_aside(self.path)
            logger.error(
                "queue %s is damaged (%s): moved to %s, starting a fresh queue",
                self.path,
                err,
                aside,
            )
        conn = _checked_connection(self.path)
        _bump(conn, "set_aside", 1)
        conn.execute("INSERT OR REPLACE INTO notes VALUES ('last_set_aside', ?)", (str(aside),))
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed at the end, rolled back on any error (a failed
        COMMIT included), so the connection is never left inside a dead transaction."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back (FULL)
                self._conn.execute("ROLLBACK")
            raise

    def release_stale_claims(self) -> int:
        """Un-claim batches a previous (killed) uplink left claimed; returns how many rows."""
        return self._conn.execute(
            "UPDATE records SET batch_id = NULL WHERE batch_id IS NOT NULL"
        ).rowcount

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    # ------------------------------------------------------------------ accept

    def accept(self, records: Sequence[Record]) -> int:
        """Store new records with their seq in one transaction; returns how many were new."""
        return len(self.accept_new(records))

    def accept_new(
        self,
        records: Sequence[Record],
        invalid: Sequence[InvalidRecord] = (),
        notify: Callable[[Record], bool] | None = None,
    ) -> list[Record]:
        """Store new records with their seq in one transaction; returns the new ones (known
        ids are skipped), as given (``seq`` is in the stored copy). Records that failed to
        decode go straight to the dead letters in the same commit (once per id). New records
        `notify` chooses are owed a notification, in the same commit (the outbox)."""
        now = time.time()
        try:
            with self._transaction():
                stored = self._insert(records, now)
                if invalid:
                    self._set_aside_invalid(invalid, now)
                if notify is not None:
                    self._conn.executemany(
                        "INSERT INTO outbox (body, made_at) VALUES (?, ?)",
                        [(_encoder.encode(r), now) for r in stored if notify(r)],
                    )
        except sqlite3.OperationalError as err:
            if "full" in str(err).lower():
                raise QueueFullError(str(err)) from err
            raise
        return stored

    def _insert(self, records: Sequence[Record], now: float) -> list[Record]:
        fresh = self._unknown(records)
        if not fresh:
            return []
        scopes = sorted({record.printer_id or "" for record in fresh})
        marks = ",".join("?" * len(scopes))
        last = dict(
            self._conn.execute(f"SELECT scope, last FROM seqs WHERE scope IN ({marks})", scopes)
        )
        rows = []
        advanced: dict[str, int] = {}
        for record in fresh:
            scope = record.printer_id or ""
            if isinstance(record, Status):  # the live lane's: ordered by ts, no seq
                rows.append((record.id, scope, 0, "status", _encoder.encode(record), now))
                continue
            last[scope] = advanced[scope] = seq = last.get(scope, 0) + 1
            body = _encoder.encode(msgspec.structs.replace(record, seq=seq))
            rows.append((record.id, scope, seq, _kind(record), body, now))
        self._conn.executemany(
            "INSERT INTO records (id, scope, seq, kind, body, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        # Statuses need no known id: the live lane dedupes them, and one spilled twice around
        # a crash reaches the API twice under one id, which it ignores. Fewer pages per spill.
        self._conn.executemany(
            "INSERT INTO known_ids VALUES (?, ?, ?)",
            [(row[0], now, row[3]) for row in rows if row[3] != "status"],
        )
        self._conn.executemany(
            "INSERT INTO seqs VALUES (?, ?) ON CONFLICT(scope) DO UPDATE SET last = excluded.last",
            list(advanced.items()),
        )
        self._stored_bytes += sum(len(row[4]) for row in rows)
        self._make_room()
        return fresh

    def _set_aside_invalid(self, invalid: Sequence[InvalidRecord], now: float) -> None:
        """Dead-letter records that could not be decoded. They take a position in ``records``
        first, so a later ``retry`` moves them back without colliding; they get no seq."""
        known = self._known([item.record_id for item in invalid])
        for item in invalid:
            if item.record_id in known:
                continue
            known.add(item.record_id)
            pos = self._conn.execute(
                "INSERT INTO records (id, scope, seq, kind, body, accepted_at) "
                "VALUES (?, ?, 0, ?, ?, ?)",
                (item.record_id, item.scope, item.kind, item.body, now),
            ).lastrowid
            self._bury("pos = ?", (pos,), item.reason, now)
            self._conn.execute(
                "INSERT INTO known_ids VALUES (?, ?, 'event')", (item.record_id, now)
            )
            self._stored_bytes += len(item.body)

    def _known(self, ids: Sequence[str]) -> set[str]:
        """Which of these ids the queue has seen (stored, delivered or set aside)."""
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                row[0]
                for row in self._conn.execute(
                    f"SELECT id FROM known_ids WHERE id IN ({marks})", chunk
                )
            )
        return known

    def _unknown(self, records: Sequence[Record]) -> list[Record]:
        """The records whose id is neither known nor repeated earlier in `records`."""
        known = self._known([record.id for record in records])
        fresh = []
        for record in records:
            if record.id not in known:
                known.add(record.id)
                fresh.append(record)
        return fresh

    def _make_room(self) -> None:
        """Delete the oldest unclaimed statuses until the stored bodies fit the cap."""
        dropped = 0
        while self._stored_bytes > self.max_bytes:
            rows = self._conn.execute(
                "SELECT pos, length(body) FROM records WHERE kind = 'status' AND batch_id IS NULL "
                "ORDER BY pos LIMIT 256"
            ).fetchall()
            if not rows:
                if not self._over_cap_logged:
                    logger.warning("queue over its cap with no status left to drop: keeping events")
                    self._over_cap_logged = True
                break
            victims = []
            for pos, size in rows:
                if self._stored_bytes <= self.max_bytes:
                    break
                victims.append((pos,))
                self._stored_bytes -= size
            self._conn.executemany("DELETE FROM records WHERE pos = ?", victims)
            dropped += len(victims)
        if dropped:
            _bump(self._conn, "dropped_status", dropped)

    # ------------------------------------------------------------------ notifications

    def outbox_oldest(self, limit: int) -> list[OutboxItem]:
        """The oldest notifications owed (their retry times are the notifier's, in memory:
        a failed attempt writes nothing)."""
        rows = self._conn.execute(
            "SELECT pos, body, made_at, attempts FROM outbox ORDER BY pos LIMIT ?", (limit,)
        ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def outbox_done(self, pos: int) -> None:
        """Sent (or given up): owed no more."""
        self._conn.execute("DELETE FROM outbox WHERE pos = ?", (pos,))

    def outbox_size(self) -> int:
        """How many notifications are owed."""
        return int(self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # ------------------------------------------------------------------ delivery

    def claim(self, max_records: int, max_bytes: int) -> Batch | None:
        """Mark a batch for delivery: the oldest records, plus a share of the newest events,
        jobs and results (never statuses: spilled statuses go oldest first, so an outage's
        arrive in ts order, while a fresh event is not starved behind their backlog)."""
        fresh = max(1, int(max_records * FRESH_SHARE))
        newest = self._conn.execute(
            # One seek per reliable kind down its (kind, pos) index, each stopping at the
            # share: never a read of the whole backlog of a kind (a range over several kinds,
            # or "kind != 'status'", would read and sort all of them on every claim).
            " UNION ALL ".join(
                "SELECT * FROM (SELECT pos, body FROM records INDEXED BY records_kind "
                f"WHERE kind = '{kind}' AND batch_id IS NULL ORDER BY pos DESC LIMIT :n)"
                for kind in RELIABLE_KINDS
            )
            + " ORDER BY pos DESC LIMIT :n",
            {"n": fresh},
        ).fetchall()
        oldest = self._conn.execute(
            "SELECT pos, body FROM records WHERE batch_id IS NULL ORDER BY pos LIMIT ?",
            (max_records - len(newest),),
        ).fetchall()
        rows = sorted({pos: body for pos, body in [*oldest, *newest]}.items())
        chosen: list[tuple[int, bytes]] = []
        size = 0
        for pos, body in rows:
            if chosen and size + len(body) > max_bytes:
                break
            chosen.append((pos, body))
            size += len(body)
        if not chosen:
            return None
        batch_id = uuid.uuid4().hex
        with self._transaction():  # one commit for the whole claim, not one per row
            self._conn.executemany(
                "UPDATE records SET batch_id = ? WHERE pos = ?",
                [(batch_id, pos) for pos, _ in chosen],
            )
        return Batch(batch_id, tuple(p for p, _ in chosen), tuple(b for _, b in chosen))

    def delivered(self, batch: Batch) -> dict[str, int]:
        """The API stored the batch: delete it. Returns how many records of each kind it
        held (the metrics count deliveries by lane)."""
        with self._transaction():
            rows = self._conn.execute(
                "SELECT kind, count(*), total(length(body)) FROM records WHERE batch_id = ? "
                "GROUP BY kind",
                (batch.batch_id,),
            ).fetchall()
            size = sum(row[2] for row in rows)
            self._conn.execute("DELETE FROM records WHERE batch_id = ?", (batch.batch_id,))
            self._conn.execute(
                "INSERT OR REPLACE INTO notes VALUES ('last_delivery', ?)", (_now_text(),)
            )
            self._prune_known_ids()
        self._stored_bytes -= int(size)
        return {str(row[0]): int(row[1]) for row in rows}

    def _prune_known_ids(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < 60:
            return
        self._pruned_at = now
        wall = time.time()
        for kind, ttl in (
            ("status", KNOWN_STATUS_TTL_S),
            ("event", KNOWN_ID_TTL_S),
            ("command_result", KNOWN_ID_TTL_S),
        ):
            self._conn.execute(
                "DELETE FROM known_ids WHERE kind = ? AND at < ?", (kind, wall - ttl)
            )

    def split(self, batch: Batch) -> tuple[Batch, Batch]:
        """Halve a claimed batch of two or more records; each half gets its own batch id (an
        Idempotency-Key names one body) and keeps the order."""
        half = len(batch.positions) // 2
        halves = []
        with self._transaction():
            for part in (slice(None, half), slice(half, None)):
                positions = batch.positions[part]
                batch_id = uuid.uuid4().hex
                self._conn.executemany(
                    "UPDATE records SET batch_id = ? WHERE pos = ?",
                    [(batch_id, p) for p in positions],
                )
                halves.append(Batch(batch_id, positions, batch.bodies[part]))
        return halves[0], halves[1]

    def dead_letter_some(self, batch: Batch, indexes: Sequence[int], reason: str) -> Batch:
        """Dead-letter some records of a claimed batch; returns the batch without them."""
        chosen = set(indexes)
        now = time.time()
        with self._transaction():
            for index in sorted(chosen):
                self._bury("pos = ?", (batch.positions[index],), reason, now)
        keep = [i for i in range(len(batch.positions)) if i not in chosen]
        return Batch(
            batch.batch_id,
            tuple(batch.positions[i] for i in keep),
            tuple(batch.bodies[i] for i in keep),
        )

    def release(self, batch: Batch) -> None:
        """Un-claim a batch (it will be claimed again, possibly under another id)."""
        self._conn.execute(
            "UPDATE records SET batch_id = NULL WHERE batch_id = ?", (batch.batch_id,)
        )

    def dead_letter(self, batch: Batch, reason: str) -> None:
        """The API refused the batch for good: keep it aside, counted, and go on."""
        with self._transaction():
            self._bury("batch_id = ?", (batch.batch_id,), reason, time.time())

    def _bury(self, where: str, args: tuple[object, ...], reason: str, now: float) -> None:
        """Move the records matching `where` to the dead letters (inside a transaction)."""
        self._conn.execute(
            "INSERT INTO dead SELECT pos, id, scope, seq, kind, body, accepted_at, ?, ? "
            f"FROM records WHERE {where}",
            (reason, now, *args),
        )
        self._conn.execute(f"DELETE FROM records WHERE {where}", args)

    def note(self, name: str) -> str | None:
        """A small named value kept in the queue file (e.g. the legacy flavor's state)."""
        row = self._conn.execute("SELECT value FROM notes WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_note(self, name: str, value: str) -> None:
        """Keep a small named value in the queue file."""
        self._conn.execute("INSERT OR REPLACE INTO notes VALUES (?, ?)", (name, value))

    def note_error(self, message: str) -> None:
        """Remember the last delivery error for ``queue stats`` and ``status``, with the time
        it was first seen: written when it changes, not at every retry of an outage."""
        if message == self._last_error:
            return
        self._conn.execute(
            "INSERT OR REPLACE INTO notes VALUES ('last_error', ?)", (f"{_now_text()} {message}",)
        )
        self._last_error = message

    # ------------------------------------------------------------------ tools

    def stats(self) -> QueueStats:
        """Depth by kind, bytes, oldest age, dead letters, drops, last delivery and error."""
        return _stats_of(self._conn)

    def peek(self, limit: int) -> list[bytes]:
        """The bodies of the next records to deliver."""
        return [
            row[0]
            for row in self._conn.execute("SELECT body FROM records ORDER BY pos LIMIT ?", (limit,))
        ]

    def dead_letters(self, limit: int) -> list[tuple[str, bytes]]:
        """(reason, body) of dead-lettered records, oldest first."""
        return list(
            self._conn.execute("SELECT reason, body FROM dead ORDER BY pos LIMIT ?", (limit,))
        )

    def retry_dead(self) -> int:
        """Move every dead letter back into the queue (same id, same seq); returns how many."""
        with self._transaction():
            moved = self._conn.execute(
                "INSERT INTO records (pos, id, scope, seq, kind, body, accepted_at) "
                "SELECT pos, id, scope, seq, kind, body, accepted_at FROM dead"
            ).rowcount
            self._conn.execute("DELETE FROM dead")
        return moved

    def purge(self) -> int:
        """Delete every queued and dead record (seqs and known ids are kept); returns how many."""
        with self._transaction():
            removed = (
                self._conn.execute("DELETE FROM records").rowcount
                + self._conn.execute("DELETE FROM dead").rowcount
            )
        self._stored_bytes = 0
        return removed

    def _scalar(self, sql: str, args: Iterable[object] = ()) -> float:
        return float(self._conn.execute(sql, tuple(args)).fetchone()[0] or 0)


def read_stats(path: Path) -> QueueStats | None:
    """Queue stats through a read-only connection (for ``status``: never repairs or writes);
    None when there is no readable queue."""
    if not path.exists():
        return None
    try:
        conn = sqlite.connect_read_only(path)
    except sqlite3.Error:
        return None
    try:
        return _stats_of(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _stored_size(conn: sqlite3.Connection) -> int:
    """Bytes of record bodies kept (queue and dead letters): what the cap counts."""
    row = conn.execute(
        "SELECT (SELECT total(length(body)) FROM records) + (SELECT total(length(body)) FROM dead)"
    ).fetchone()
    return int(row[0] or 0)


def _stats_of(conn: sqlite3.Connection) -> QueueStats:
    by_kind = conn.execute(
        "SELECT kind, count(*), min(accepted_at) FROM records GROUP BY kind"
    ).fetchall()
    depth = {str(kind): int(count) for kind, count, _ in by_kind}
    oldest_by_kind = {str(kind): float(at) for kind, _, at in by_kind}
    oldest = min(oldest_by_kind.values(), default=None)
    notes = dict(conn.execute("SELECT name, value FROM notes").fetchall())
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    return QueueStats(
        depth_by_kind=depth,
        bytes=_stored_size(conn),
        oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
        dead=int(conn.execute("SELECT count(*) FROM dead").fetchone()[0]),
        dropped_status=int(counters.get("dropped_status", 0)),
        set_aside=int(counters.get("set_aside", 0)),
        last_delivery=notes.get("last_delivery"),
        last_error=notes.get("last_error"),
        oldest_by_kind=oldest_by_kind,
    )


def _kind(record: Record) -> str:
    return type(record).__struct_config__.tag  # type: ignore[return-value]


def _bump(conn: sqlite3.Connection, name: str, by: int) -> None:
    conn.execute(
        "INSERT INTO counters VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        (name, by),
    )


def _now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
