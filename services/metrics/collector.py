"""The metrics of architecture §4.7, built at scrape time from current facts, so nothing
shown is older than its source: the tap's latest statuses (``facts.py``), the poller's
printer health files and the uplink's figures in runtime_dir (``gateway.health``).

Labels take values from fixed sets (states, heaters, outcomes, reasons, lanes, command
types, configured printer ids): never a file name, a job id or text from a printer or
the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.config import Config, PrinterSection
from gateway.health import PrinterHealth, UplinkHealth, read_printers, read_uplink
from gateway.layout import Layout
from gateway.messages import CommandType, JobOutcome, Outcome, PrinterState, Status
from services.metrics.facts import TapFacts, TapView

STATES: tuple[str, ...] = (*get_args(PrinterState), "unknown")
JOB_OUTCOMES: tuple[str, ...] = get_args(JobOutcome)
COMMAND_TYPES: tuple[str, ...] = get_args(CommandType)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
LANES = ("live", "reliable")
STALE_GRACE_S = 10.0  # on top of two probe intervals: a status this old is not current


def stale_after_s(printer: PrinterSection) -> float:
    """How old a printer's latest status may be and still be current: the poller sends one
    at least every probe (every poll while printing), so missing two means it is not
    reporting (poller down, or the uplink not receiving)."""
    return 2 * max(printer.probe_interval_s, printer.poll_interval_s) + STALE_GRACE_S


@dataclass(frozen=True)
class Facts:
    """Everything one scrape shows."""

    view: TapView
    printers: dict[str, PrinterHealth]
    uplink: UplinkHealth | None
    now: float  # time.monotonic(), to age the latest statuses


def families(config: Config, facts: Facts) -> list[Metric]:
    """The metric families for these facts (pure)."""
    return [
        *_printer_families(config, facts),
        *_count_families(config, facts),
        *_uplink_families(facts.uplink),
        _gauge(
            "pgw_build_info", "The gateway's version (always 1)", ["version"], [([__version__], 1)]
        ),
    ]


def _current(config: Config, facts: Facts) -> dict[str, Status]:
    """Each printer's latest status, if it is recent enough to be the current one."""
    current = {}
    for printer in config.printers:
        latest = facts.view.latest.get(printer.id)
        if latest is not None and facts.now - latest.arrived <= stale_after_s(printer):
            current[printer.id] = latest.status
    return current


def _printer_families(config: Config, facts: Facts) -> Iterator[Metric]:
    current = _current(config, facts)
    up, states, temps, targets, progress, remaining = [], [], [], [], [], []
    for printer in config.printers:
        status = current.get(printer.id)
        state = status.state if status is not None else "unknown"
        up.append(([printer.id], 1 if state not in ("offline", "unknown") else 0))
        states += [([printer.id, s], 1 if s == state else 0) for s in STATES]
        if status is None:
            continue  # nothing current: absent, never the last value seen
        for heater, reading in _heaters(status):
            temps.append(([printer.id, heater], reading[0]))
            targets.append(([printer.id, heater], reading[1]))
        if status.progress_percent is not None and status.state in ("printing", "paused"):
            progress.append(([printer.id], status.progress_percent / 100))
        if status.job is not None and status.job.remaining_s is not None:
            remaining.append(([printer.id], status.job.remaining_s))
    yield _gauge(
        "pgw_printer_up",
        "1 while the printer answers (for the gateway or another client), 0 while it is "
        "offline or has no current status",
        ["printer"],
        up,
    )
    yield _gauge(
        "pgw_printer_state_info",
        "1 for the printer's current state (unknown: no current status), 0 for the others",
        ["printer", "state"],
        states,
    )
    yield _gauge(
        "pgw_temperature_celsius",
        "Heater temperature; absent while the printer cannot be read",
        ["printer", "heater"],
        temps,
    )
    yield _gauge(
        "pgw_target_temperature_celsius",
        "Heater target temperature; absent while the printer cannot be read",
        ["printer", "heater"],
        targets,
    )
    yield _gauge(
        "pgw_print_progress_ratio",
        "Progress of the print, 0 to 1, while printing or paused",
        ["printer"],
        progress,
    )
    yield _gauge(
        "pgw_print_remaining_seconds",
        "The print's estimated time left, while one is known",
        ["printer"],
        remaining,
    )


def _heaters(status: Status) -> Iterator[tuple[str, tuple[float, float]]]:
    if status.nozzle is not None:
        yield "nozzle", (status.nozzle.current, status.nozzle.target)
    for index, extra in enumerate(status.extra_nozzles, start=2):
        yield f"nozzle{index}", (extra.current, extra.target)
    if status.bed is not None:
        yield "bed", (status.bed.current, status.bed.target)


def _count_families(config: Config, facts: Facts) -> Iterator[Metric]:
    ids = [printer.id for printer in config.printers]
    prints = {(p, o): 0 for p in ids for o in JOB_OUTCOMES}
    prints.update({key: n for key, n in facts.view.prints.items() if key[0] in ids})
    yield _counter(
        "pgw_prints",
        "Prints ended, by outcome, since the metrics service started (job records)",
        ["printer", "outcome"],
        [(list(key), n) for key, n in sorted(prints.items())],
    )
    commands = {(t, o): 0 for t in COMMAND_TYPES for o in OUTCOMES}
    for (kind, outcome), n in facts.view.commands.items():
        key = (kind if kind in COMMAND_TYPES or kind == "unknown" else "other", outcome)
        commands[key] = commands.get(key, 0) + n
    yield _counter(
        "pgw_commands",
        "Command results, by type and outcome, since the metrics service started",
        ["type", "outcome"],
        [(list(key), n) for key, n in sorted(commands.items())],
    )
    errors = [
        ([printer_id, reason], n)
        for printer_id in ids
        if (health := facts.printers.get(printer_id)) is not None
        for reason, n in sorted(health.poll_errors.items())
    ]
    yield _counter(
        "pgw_poll_errors",
        "Failed reads of the printer, by reason, since the poller started",
        ["printer", "reason"],
        errors,
    )


def _uplink_families(uplink: UplinkHealth | None) -> Iterator[Metric]:
    if uplink is None:
        return  # the uplink has not said anything yet: absent rather than zero
    yield _gauge(
        "pgw_queue_records",
        "Records in the durable queue on disk, by lane (live: spilled statuses)",
        ["lane"],
        [([lane], uplink.queue_records.get(lane, 0)) for lane in LANES],
    )
    yield _gauge(
        "pgw_queue_bytes",
        "Bytes of record bodies on disk (queue and dead letters): what max_queue_mb caps",
        [],
        [([], uplink.queue_bytes)],
    )
    yield _gauge(
        "pgw_queue_oldest_record_timestamp_seconds",
        "When the oldest record on disk was accepted (Unix time), by lane; absent when empty",
        ["lane"],
        [([lane], at) for lane, at in sorted(uplink.queue_oldest.items())],
    )
    yield _counter(
        "pgw_delivered_records",
        "Records the API stored, by lane, since the uplink started",
        ["lane"],
        [([lane], uplink.delivered.get(lane, 0)) for lane in LANES],
    )
    yield _counter(
        "pgw_dropped_records",
        "Statuses not delivered, by reason (queue_cap: the oldest on disk at the cap, kept "
        "in the queue file; downsampled, no_room: since the uplink started)",
        ["reason"],
        [([reason], n) for reason, n in sorted(uplink.dropped.items())],
    )
    yield _counter(
        "pgw_upload_requests",
        "Posts to the API, by result, since the uplink started",
        ["result"],
        [([result], n) for result, n in sorted(uplink.upload_requests.items())],
    )


def _gauge(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _counter(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


class GatewayCollector(Collector):
    """Reads the facts at each scrape (the HTTP server's thread)."""

    def __init__(self, config: Config, tap: TapFacts) -> None:
        self.config = config
        self.layout = Layout.of(config)
        self.tap = tap

    def collect(self) -> Iterable[Metric]:
        """The families of this moment."""
        facts = Facts(
            view=self.tap.view(),
            printers={health.printer_id: health for health in read_printers(self.layout)},
            uplink=read_uplink(self.layout),
            now=time.monotonic(),
        )
        return families(self.config, facts)
