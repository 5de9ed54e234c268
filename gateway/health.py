"""Small health facts the services leave in ``runtime_dir`` for ``printer-gateway status``.

``starts/<service>`` counts starts since ``up`` began (restarts = starts - 1);
``printers/<id>.json`` is each printer's state, lease and last contact, rewritten by the
poller; ``problems/<service>.json`` is what a service currently finds wrong (a loop failing,
the API refusing the token, delivery stalled), rewritten only when that set changes.
runtime_dir is tmpfs on a Pi: no fsync, no SD-card wear.
"""

from __future__ import annotations

import logging
import os
import threading

import msgspec

from gateway.files import private_dir, write_atomically
from gateway.layout import Layout
from gateway.messages import utc_text
from gateway.redaction import safe

logger = logging.getLogger(__name__)
REPORT_AFTER_S = 60.0  # a failure (delivery, fetching commands) that lasts this long: `status`


class PrinterHealth(msgspec.Struct, frozen=True):
    """What ``status`` shows for one printer."""

    printer_id: str
    state: str
    lease_held: bool
    last_contact: str | None
    detail: str | None = None  # why it could not be read (redacted, escaped), while it cannot
    sharing: str | None = None  # free, suspect or held (services/poller/sharing.py)
    connects_last_minute: int | None = None  # connection attempts in the last 60 s
    # Failed reads since the poller started, by reason (gateway.errors.poll_error_reason),
    # for the metrics: a counter that restarts at zero with the poller.
    poll_errors: dict[str, int] = msgspec.field(default_factory=dict)


def record_start(layout: Layout, service: str) -> int:
    """Count one more start of a service; returns the count."""
    path = layout.starts_dir / service
    private_dir(path.parent)
    try:
        count = int(path.read_text() or "0") + 1
    except (FileNotFoundError, ValueError):
        count = 1
    write_atomically(path, str(count).encode())
    return count


def starts(layout: Layout, service: str) -> int:
    """How often a service started since ``up`` began (0: never)."""
    try:
        return int((layout.starts_dir / service).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def reset_starts(layout: Layout) -> None:
    """Forget start counts (``up`` begins a new count)."""
    folder = layout.starts_dir
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink()


def write_printer(layout: Layout, health: PrinterHealth) -> None:
    """Rewrite one printer's health file."""
    path = layout.printers_dir / f"{health.printer_id}.json"
    private_dir(path.parent)
    if health.detail is not None:
        health = msgspec.structs.replace(health, detail=safe(health.detail))
    write_atomically(path, msgspec.json.encode(health))


def read_printers(layout: Layout) -> list[PrinterHealth]:
    """Every printer's last written health."""
    folder = layout.printers_dir
    result = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            result.append(msgspec.json.decode(path.read_bytes(), type=PrinterHealth))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # being rewritten, or from another version: skip this once
    return result


class Problem(msgspec.Struct, frozen=True):
    """Something a service finds wrong: a stable key, why (redacted), since when (RFC 3339)."""

    key: str
    reason: str
    since: str


class ServiceProblems(msgspec.Struct, frozen=True):
    """The content of ``problems/<service>.json``."""

    service: str
    pid: int
    problems: tuple[Problem, ...] = ()


class Problems:
    """A service's current problems, mirrored to ``runtime_dir`` whenever they change.

    Thread-safe (the uplink's delivery thread and its event loop both report). Without a
    layout (tests that build services in-process) the problems are kept in memory only.
    A reason is passed through ``redaction.safe``: it may quote a server or a printer.
    """

    def __init__(self, layout: Layout | None, service: str) -> None:
        self.service = service
        self._path = None if layout is None else layout.problems_dir / f"{service}.json"
        self._lock = threading.Lock()
        self._current: dict[str, Problem] = {}
        self._write_failed = False
        self._write()  # a new life starts with a clean slate

    def report(self, key: str, reason: str) -> None:
        """Say (or update) what is wrong under `key`; the first report sets ``since``."""
        reason = safe(reason)
        with self._lock:
            old = self._current.get(key)
            if old is not None and old.reason == reason:
                return
            since = old.since if old is not None else utc_text()
            self._current[key] = Problem(key, reason, since)
            self._write()

    def clear(self, key: str) -> None:
        """The problem under `key` is over."""
        with self._lock:
            if self._current.pop(key, None) is not None:
                self._write()

    def current(self) -> tuple[Problem, ...]:
        """What is wrong now, in the order it was first reported."""
        with self._lock:
            return tuple(self._current.values())

    def _write(self) -> None:
        """Mirror the problems to the file; a failure to write (tmpfs full, runtime_dir gone)
        must never become one more exception in the loop that reports: logged once."""
        if self._path is None:
            return
        report = ServiceProblems(self.service, os.getpid(), tuple(self._current.values()))
        try:
            private_dir(self._path.parent)
            write_atomically(self._path, msgspec.json.encode(report))
        except OSError as err:
            if not self._write_failed:
                logger.error(
                    "cannot write %s for `status` (%s): problems kept in memory", self._path, err
                )
            self._write_failed = True
        else:
            self._write_failed = False


class BridgeHealth(msgspec.Struct, frozen=True):
    """The MQTT bridge's broker connection, for ``status``."""

    broker: str  # redacted
    connected: bool
    since: str | None = None
    published: int = 0
    commands: int = 0


def write_bridge(layout: Layout, health: BridgeHealth) -> None:
    """Leave the bridge's state in runtime_dir (a failure is logged, never raised)."""
    path = layout.runtime_dir / "bridge.json"
    try:
        private_dir(path.parent)
        write_atomically(path, msgspec.json.encode(health))
    except OSError as err:
        logger.warning("cannot write %s for `status`: %s", path, err)


def read_bridge(layout: Layout) -> BridgeHealth | None:
    """The bridge's last word, or None (no bridge, or not written yet)."""
    try:
        return msgspec.json.decode(
            (layout.runtime_dir / "bridge.json").read_bytes(), type=BridgeHealth
        )
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


class UplinkHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The uplink's figures for the metrics service (docs/metrics.md), rewritten by the
    uplink at most once a second when they change. Lanes are ``live`` (statuses) and
    ``reliable`` (events, jobs, command results). Counters run since the uplink started,
    except ``dropped["queue_cap"]``, which the queue file keeps."""

    queue_records: dict[str, int] = msgspec.field(default_factory=dict)  # on disk, by lane
    queue_bytes: int = 0  # record bodies on disk (queue and dead letters): what the cap counts
    queue_oldest: dict[str, float] = msgspec.field(default_factory=dict)  # Unix s, by lane
    delivered: dict[str, int] = msgspec.field(default_factory=dict)  # by lane
    dropped: dict[str, int] = msgspec.field(default_factory=dict)  # by reason
    upload_requests: dict[str, int] = msgspec.field(default_factory=dict)  # by result


def write_uplink(layout: Layout, health: UplinkHealth) -> None:
    """Leave the uplink's figures in runtime_dir (raises OSError: the caller logs once)."""
    private_dir(layout.runtime_dir)
    write_atomically(layout.uplink_health, msgspec.json.encode(health))


def read_uplink(layout: Layout) -> UplinkHealth | None:
    """The uplink's last figures, or None (not written yet, or being replaced this once)."""
    try:
        return msgspec.json.decode(layout.uplink_health.read_bytes(), type=UplinkHealth)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def read_problems(layout: Layout) -> list[ServiceProblems]:
    """The problems of every service whose process is still alive (a dead one's file is
    stale: supervisord shows it down)."""
    folder = layout.problems_dir
    result = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            report = msgspec.json.decode(path.read_bytes(), type=ServiceProblems)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        if _alive(report.pid):
            result.append(report)
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
