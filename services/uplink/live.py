"""The live lane: statuses go to the API from memory while it keeps up (architecture §4.3).

Theory of operation
-------------------
A status arrives from a sender (the poller) and waits here, in memory, never on disk:

* the **delivery thread** takes the waiting statuses (oldest first, a batch at a time) and
  posts them. Posted and stored -> *delivered*: each is acknowledged to its sender. A post
  that fails hands the batch back as *failed*.
* the **receiving loop** looks here on every turn (at least five times a second) and takes
  what is *due to spill*: a failed status, or one that has waited longer than ``LAG_S``
  (the API is slow, down, or the delivery thread is busy with a backlog). It keeps a
  downsampled share of those in the durable queue (``spill_worthy``) and acknowledges all
  of them: a status is acknowledged once delivered or kept, as §3 says, and one dropped by
  the downsampling is acknowledged too (it was judged, not lost).

Downsampling keeps, per printer, every status whose ``state`` differs from the status
before it (seen here, delivered or not), and otherwise one per ``interval_s``. Spilled
statuses are delivered from the queue after the outage, oldest first, with the reliable
lane's records. To keep that order, nothing spills past a status still in flight (a slow
post that then fails spills first, then the newer ones behind it); only ``max_waiting``
overrides this. So on the happy path a status costs no disk write; during an outage a
printer costs one small row per ``interval_s`` (plus its changes of state).

A sender re-sends what is not acknowledged after a while; a status already waiting, or
delivered or spilled recently, is recognised by its id and acknowledged, not taken twice.
A status lost with a killed uplink is acceptable (the sender still has it unless it was
acknowledged, i.e. delivered or kept). Memory is bounded: past ``max_waiting`` the oldest
waiting status is spilled at once.

Thread-safe: the receiving loop adds and spills, the delivery thread takes and settles.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from gateway.messages import DECODE_ERRORS, Status

LAG_S = 3.0  # a status waiting longer than this is kept on disk instead
RECENT_IDS = 20_000  # ids of delivered or spilled statuses remembered, to dedupe re-sends
SNAPSHOT_WAITING = 100  # waiting statuses shown by `queue peek`


@dataclass
class LiveStatus:
    """One waiting status, who sent it, when it arrived (monotonic), and whether its state
    differs from the status of its printer before it (decided on arrival)."""

    peer: bytes
    status: Status
    arrived: float
    changed: bool
    failed: bool = False
    taken: bool = False
    keep: bool = False  # kept whatever the downsampling says (the API refused its batch)
    stale: bool = False  # never kept: the API shows only the current state (legacy flavor)


@dataclass(frozen=True)
class SpillChoice:
    """What to keep of a spill, and the downsampling state it moves to once stored."""

    kept: list[Status]
    last_kept: dict[str, float]


class LiveStats(msgspec.Struct):
    """What ``queue stats`` and ``status`` show about the live lane (since the uplink
    started)."""

    waiting: int = 0
    delivered: int = 0
    spilled: int = 0
    dropped_by_downsampling: int = 0
    dropped_no_room: int = 0  # over max_waiting while the disk refused them too
    last_delivery: str | None = None


class LiveSnapshot(msgspec.Struct, frozen=True):
    """The live lane as the uplink leaves it in ``runtime_dir`` for the tools: its counters
    and the oldest statuses waiting in memory."""

    stats: LiveStats
    waiting: tuple[Status, ...] = ()


def read_snapshot(path: Path) -> LiveSnapshot | None:
    """The last snapshot the uplink wrote (None: none, or unreadable this once)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=LiveSnapshot)
    except (OSError, *DECODE_ERRORS):
        return None


@dataclass
class _Printer:
    last_state: str | None = None
    last_kept: float = field(default=-1e18)


class LiveLane:
    """Statuses waiting in memory, and the acknowledgements they are owed."""

    def __init__(self, interval_s: float, wake: threading.Event, max_waiting: int = 10_000) -> None:
        self.interval_s = interval_s
        self.wake = wake  # set whenever a status arrives: the delivery thread waits on it
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._waiting: collections.OrderedDict[str, LiveStatus] = collections.OrderedDict()
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._printers: dict[str, _Printer] = {}
        self._acks: collections.defaultdict[bytes, list[str]] = collections.defaultdict(list)
        self._counts = LiveStats()  # `waiting` is derived: see ``stats``

    # ------------------------------------------------------------------ receiving side

    def add(self, peer: bytes, statuses: list[Status], now: float | None = None) -> None:
        """Statuses from a sender; a repeated id is only acknowledged again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for status in statuses:
                if status.id in self._waiting:
                    continue  # acknowledged when it settles
                if status.id in self._recent:
                    self._acks[peer].append(status.id)
                    continue
                printer = self._printers.setdefault(status.printer_id or "", _Printer())
                changed = status.state != printer.last_state
                printer.last_state = status.state
                self._waiting[status.id] = LiveStatus(peer, status, now, changed)
        self.wake.set()

    def due_to_spill(self, now: float | None = None) -> list[LiveStatus]:
        """Take the statuses that failed or waited too long (and the oldest ones past
        ``max_waiting``); the caller keeps ``spill_worthy`` of them and then ``spilled``."""
        now = time.monotonic() if now is None else now
        due = []
        with self._lock:
            over = len(self._waiting) - self.max_waiting
            for status_id, entry in list(self._waiting.items()):
                if entry.taken:
                    if over > 0:
                        continue  # memory first: the newer ones must go now
                    break  # in flight: those behind it spill after it, in arrival order
                if entry.failed or now - entry.arrived > LAG_S or over > 0:
                    due.append(self._waiting.pop(status_id))
                    over -= 1
        return due

    def spill_worthy(self, due: list[LiveStatus]) -> SpillChoice:
        """The statuses among `due` to keep on disk: every change of state (and every status
        of a batch the API refused), else one per printer per ``interval_s`` (by arrival).
        Nothing changes until ``spilled``: a store that fails leaves the lane as it was."""
        kept = []
        with self._lock:
            last_kept = {key: p.last_kept for key, p in self._printers.items()}
        for entry in due:
            key = entry.status.printer_id or ""
            since = last_kept.get(key, -1e18)
            if entry.stale:
                continue
            if entry.keep or entry.changed or entry.arrived - since >= self.interval_s:
                last_kept[key] = max(since, entry.arrived)
                kept.append(entry.status)
        return SpillChoice(kept, last_kept)

    def spilled(self, due: list[LiveStatus], choice: SpillChoice) -> None:
        """`due` is settled: `choice.kept` of them are durable, the rest judged not worth
        keeping."""
        with self._lock:
            for key, at in choice.last_kept.items():
                self._printers.setdefault(key, _Printer()).last_kept = at
            self._settle(due)
            self._counts.spilled += len(choice.kept)
            self._counts.dropped_by_downsampling += len(due) - len(choice.kept)

    def put_back(self, due: list[LiveStatus]) -> None:
        """Spilling failed (a full disk): they wait again, unacknowledged, in arrival order,
        as far as ``max_waiting`` allows; the oldest past it are given up (acknowledged and
        counted: with the API down and the disk full there is nowhere left to keep them,
        and memory must stay bounded)."""
        with self._lock:
            merged = sorted([*due, *self._waiting.values()], key=lambda e: e.arrived)
            over = max(0, len(merged) - self.max_waiting)
            given_up = [e for e in merged[:over] if not e.taken]
            gone = {e.status.id for e in given_up}
            self._waiting = collections.OrderedDict(
                (e.status.id, e) for e in merged if e.status.id not in gone
            )
            self._settle(given_up)
            self._counts.dropped_no_room += len(given_up)

    @property
    def stats(self) -> LiveStats:
        """The counters, with how many statuses wait right now."""
        with self._lock:
            return msgspec.structs.replace(self._counts, waiting=len(self._waiting))

    def snapshot(self) -> LiveSnapshot:
        """The counters and the oldest waiting statuses, for the tools."""
        with self._lock:
            waiting = tuple(
                itertools.islice((e.status for e in self._waiting.values()), SNAPSHOT_WAITING)
            )
            stats = msgspec.structs.replace(self._counts, waiting=len(self._waiting))
        return LiveSnapshot(stats, waiting)

    def acks(self) -> dict[bytes, list[str]]:
        """Acknowledgements owed, by sender (taken: each is sent once)."""
        with self._lock:
            owed, self._acks = dict(self._acks), collections.defaultdict(list)
        return owed

    # ------------------------------------------------------------------ delivery side

    def take(self, max_records: int) -> list[LiveStatus]:
        """The oldest waiting statuses not taken yet, marked taken (for one post)."""
        with self._lock:
            chosen: list[LiveStatus] = []
            for entry in self._waiting.values():
                if len(chosen) >= max_records:
                    break
                if not entry.taken and not entry.failed:
                    entry.taken = True
                    chosen.append(entry)
            return chosen

    def delivered(self, taken: list[LiveStatus], at: str) -> None:
        """The API stored them: acknowledge them."""
        with self._lock:
            for entry in taken:
                self._waiting.pop(entry.status.id, None)
                printer = self._printers.setdefault(entry.status.printer_id or "", _Printer())
                printer.last_kept = max(printer.last_kept, entry.arrived)
            self._settle(taken)
            self._counts.delivered += len(taken)
            self._counts.last_delivery = at

    def failed(
        self, taken: list[LiveStatus], keep_all: bool = False, keep_none: bool = False
    ) -> None:
        """The post failed: the receiving loop spills them at its next turn (all of them,
        with `keep_all`: the API refused something in the batch, which is not an outage;
        none, with `keep_none`: an API that shows only the current state, the legacy one,
        must not be shown the outage's statuses after newer ones)."""
        with self._lock:
            for entry in taken:
                entry.taken, entry.failed = False, True
                entry.keep = entry.keep or keep_all
                entry.stale = keep_none

    def waiting(self) -> bool:
        """Whether any status waits to be posted."""
        with self._lock:
            return any(not e.taken and not e.failed for e in self._waiting.values())

    # ------------------------------------------------------------------ internals

    def _settle(self, entries: list[LiveStatus]) -> None:
        """Owe each sender its ack and remember the id (under the lock)."""
        for entry in entries:
            self._acks[entry.peer].append(entry.status.id)
            self._recent[entry.status.id] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
