"""What the metrics service learns from the uplink's tap: each printer's latest status (with
when it arrived, so an old one is never shown as current), prints by outcome and command
results by type and outcome. No I/O: the service feeds records in, the collector reads a
``TapView`` out.

Thread-safe: the event loop adds records, the HTTP server's thread reads at scrape time.
The tap shows every record the uplink *accepts*, and a record re-sent by its sender (an
acknowledgement lost, a poller's journal replayed) is accepted again: reliable records are
counted once per id (``RECENT_IDS`` remembered).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from gateway.messages import CommandResult, Job, Record, Status

RECENT_IDS = 10_000  # reliable record ids remembered to count a re-sent record once


@dataclass(frozen=True)
class Latest:
    """A printer's latest status and when it arrived (time.monotonic())."""

    status: Status
    arrived: float


@dataclass(frozen=True)
class TapView:
    """A copy of the facts for one scrape."""

    latest: dict[str, Latest] = field(default_factory=dict)
    prints: dict[tuple[str, str], int] = field(default_factory=dict)  # (printer, outcome)
    commands: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, outcome)


class TapFacts:
    """Counts and latest statuses since the service started (counters restart at zero with
    the process; Prometheus reads a drop as a reset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Latest] = {}
        self._prints: collections.Counter[tuple[str, str]] = collections.Counter()
        self._commands: collections.Counter[tuple[str, str]] = collections.Counter()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()

    def add(self, record: Record, now: float | None = None) -> None:
        """One record from the tap."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if isinstance(record, Status):
                if record.printer_id is not None:
                    self._latest[record.printer_id] = Latest(record, now)
                return
            if record.id in self._seen:
                return
            self._seen[record.id] = None
            while len(self._seen) > RECENT_IDS:
                self._seen.popitem(last=False)
            if isinstance(record, Job) and record.printer_id is not None:
                self._prints[(record.printer_id, record.outcome)] += 1
            elif isinstance(record, CommandResult):
                self._commands[(record.command_type or "unknown", record.outcome)] += 1

    def view(self) -> TapView:
        """A consistent copy for one scrape."""
        with self._lock:
            return TapView(dict(self._latest), dict(self._prints), dict(self._commands))
