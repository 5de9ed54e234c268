"""The metrics built from facts (services/metrics): read back with prometheus-client's own
parser, so the text is what Prometheus would read. Statuses current or old, a printer off,
counts from the tap deduped by id, label values from fixed sets, the uplink's figures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway import __version__
from gateway.config import Config
from gateway.health import PrinterHealth, UplinkHealth
from gateway.messages import CommandResult, Job, JobProgress, Status, Temperature
from services.metrics.collector import Facts, families, stale_after_s
from services.metrics.facts import TapFacts
from tests.support.configs import make_config

REPO = Path(__file__).resolve().parents[1]
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T0 = 1000.0  # monotonic time the statuses arrive


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def scrape(config: Config, facts: Facts) -> list[Sample]:
    """The exposition text of these facts, parsed back."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(config, facts)))
    text = generate_latest(registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample with this name and labels, or None."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else None


def names(samples: list[Sample], printer: str) -> set[str]:
    return {s.name for s in samples if s.labels.get("printer") == printer}


def printing(record_id: str = "s1", remaining_s: float | None = 1200.0) -> Status:
    return Status(
        id=record_id,
        printer_id="rex1",
        ts=AT,
        state="printing",
        nozzle=Temperature(209.5, 210),
        bed=Temperature(59.0, 60),
        extra_nozzles=(Temperature(25.0, 0),),
        progress_percent=42.0,
        file="secret-benchy.gx",
        job=JobProgress(id="job-7f3a", started_at=AT, elapsed_s=600, remaining_s=remaining_s),
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(
        tmp_path,
        {"rex1": {"probe_interval_s": 30, "poll_interval_s": 1}, "rex2": 8899},
    )


def facts_of(tap: TapFacts, now: float, uplink: UplinkHealth | None = None) -> Facts:
    return Facts(view=tap.view(), printers={}, uplink=uplink, now=now)


def test_a_printing_printer(config: Config) -> None:
    tap = TapFacts()
    tap.add(printing(), now=T0)
    samples = scrape(config, facts_of(tap, T0 + 1))
    assert value(samples, "pgw_printer_up", printer="rex1") == 1
    assert value(samples, "pgw_printer_state_info", printer="rex1", state="printing") == 1
    assert value(samples, "pgw_printer_state_info", printer="rex1", state="idle") == 0
    assert value(samples, "pgw_temperature_celsius", printer="rex1", heater="nozzle") == 209.5
    assert value(samples, "pgw_target_temperature_celsius", printer="rex1", heater="nozzle") == 210
    assert value(samples, "pgw_temperature_celsius", printer="rex1", heater="bed") == 59.0
    assert value(samples, "pgw_target_temperature_celsius", printer="rex1", heater="bed") == 60
    assert value(samples, "pgw_temperature_celsius", printer="rex1", heater="nozzle2") == 25.0
    assert value(samples, "pgw_print_progress_ratio", printer="rex1") == pytest.approx(0.42)
    assert value(samples, "pgw_print_remaining_seconds", printer="rex1") == 1200
    assert value(samples, "pgw_build_info", version=__version__) == 1
    # rex2 never reported: known, not up, state unknown, nothing measured
    assert value(samples, "pgw_printer_up", printer="rex2") == 0
    assert value(samples, "pgw_printer_state_info", printer="rex2", state="unknown") == 1
    assert "pgw_temperature_celsius" not in names(samples, "rex2")


def test_no_file_name_or_job_id_in_any_label(config: Config) -> None:
    tap = TapFacts()
    tap.add(printing(), now=T0)
    tap.add(job("j1", "completed"), now=T0)
    for sample in scrape(config, facts_of(tap, T0)):
        for label in sample.labels.values():
            assert "benchy" not in label
            assert "job-" not in label


def test_an_old_status_shows_nothing_measured(config: Config) -> None:
    tap = TapFacts()
    tap.add(printing(), now=T0)
    old = T0 + stale_after_s(config.printer("rex1")) + 0.1
    samples = scrape(config, facts_of(tap, old))
    assert value(samples, "pgw_printer_up", printer="rex1") == 0
    assert value(samples, "pgw_printer_state_info", printer="rex1", state="unknown") == 1
    assert value(samples, "pgw_printer_state_info", printer="rex1", state="printing") == 0
    for gone in (
        "pgw_temperature_celsius",
        "pgw_target_temperature_celsius",
        "pgw_print_progress_ratio",
        "pgw_print_remaining_seconds",
    ):
        assert gone not in names(samples, "rex1")
    just_in_time = T0 + stale_after_s(config.printer("rex1"))
    assert value(scrape(config, facts_of(tap, just_in_time)), "pgw_printer_up", printer="rex1") == 1


def test_a_printer_that_is_off(config: Config) -> None:
    tap = TapFacts()
    tap.add(printing(), now=T0)
    tap.add(Status(id="s2", printer_id="rex1", ts=AT, state="offline"), now=T0 + 5)
    samples = scrape(config, facts_of(tap, T0 + 6))
    assert value(samples, "pgw_printer_up", printer="rex1") == 0
    assert value(samples, "pgw_printer_state_info", printer="rex1", state="offline") == 1
    assert names(samples, "rex1") == {
        "pgw_printer_up",
        "pgw_printer_state_info",
        "pgw_prints_total",
    }


def test_time_left_only_while_known(config: Config) -> None:
    tap = TapFacts()
    tap.add(printing(remaining_s=None), now=T0)
    samples = scrape(config, facts_of(tap, T0))
    assert value(samples, "pgw_print_remaining_seconds", printer="rex1") is None
    assert value(samples, "pgw_print_progress_ratio", printer="rex1") == pytest.approx(0.42)


def job(record_id: str, outcome: str, printer: str = "rex1") -> Job:
    return Job(
        id=record_id,
        printer_id=printer,
        ts=AT,
        job_id="job-7f3a",
        file="secret-benchy.gx",
        outcome=outcome,  # type: ignore[arg-type]
        started_at=AT,
        ended_at=AT,
        print_s=60.0,
    )


def result(record_id: str, command_type: str | None, outcome: str = "done") -> CommandResult:
    return CommandResult(
        id=record_id,
        printer_id="rex1",
        ts=AT,
        command_id=record_id,
        outcome=outcome,  # type: ignore[arg-type]
        command_type=command_type,
    )


def test_prints_and_commands_counted_once_per_record_id(config: Config) -> None:
    tap = TapFacts()
    tap.add(job("j1", "completed"), now=T0)
    tap.add(job("j1", "completed"), now=T0)  # re-sent by its poller: accepted again
    tap.add(job("j2", "cancelled"), now=T0)
    tap.add(job("j3", "completed", printer="gone"), now=T0)  # not in the config: not shown
    tap.add(result("r1", "pause"), now=T0)
    tap.add(result("r1", "pause"), now=T0)
    tap.add(result("r2", "pause", "rejected"), now=T0)
    tap.add(result("r3", None, "failed"), now=T0)  # from an older gateway
    tap.add(result("r4", "explode\nnow", "rejected"), now=T0)  # a type the API made up
    samples = scrape(config, facts_of(tap, T0))
    assert value(samples, "pgw_prints_total", printer="rex1", outcome="completed") == 1
    assert value(samples, "pgw_prints_total", printer="rex1", outcome="cancelled") == 1
    assert value(samples, "pgw_prints_total", printer="rex1", outcome="failed") == 0
    assert value(samples, "pgw_prints_total", printer="rex2", outcome="completed") == 0
    assert not [s for s in samples if s.labels.get("printer") == "gone"]
    assert value(samples, "pgw_commands_total", type="pause", outcome="done") == 1
    assert value(samples, "pgw_commands_total", type="pause", outcome="rejected") == 1
    assert value(samples, "pgw_commands_total", type="resume", outcome="done") == 0
    assert value(samples, "pgw_commands_total", type="unknown", outcome="failed") == 1
    assert value(samples, "pgw_commands_total", type="other", outcome="rejected") == 1


def test_poll_errors_from_the_printer_health_files(config: Config) -> None:
    health = PrinterHealth("rex1", "offline", False, None, poll_errors={"unreachable": 4})
    stray = PrinterHealth("gone", "offline", False, None, poll_errors={"timeout": 1})
    facts = Facts(
        view=TapFacts().view(), printers={"rex1": health, "gone": stray}, uplink=None, now=T0
    )
    samples = scrape(config, facts)
    assert value(samples, "pgw_poll_errors_total", printer="rex1", reason="unreachable") == 4
    assert not [s for s in samples if s.labels.get("printer") == "gone"]


def test_the_uplink_figures(config: Config) -> None:
    samples = scrape(config, facts_of(TapFacts(), T0))
    assert not [s for s in samples if s.name.startswith(("pgw_queue", "pgw_delivered"))]
    uplink = UplinkHealth(
        queue_records={"live": 3, "reliable": 2},
        queue_bytes=1234,
        queue_oldest={"reliable": 1_780_000_000.5},
        delivered={"live": 100, "reliable": 7},
        dropped={"queue_cap": 1, "downsampled": 9, "no_room": 0},
        upload_requests={"delivered": 50, "retry": 3},
    )
    samples = scrape(config, facts_of(TapFacts(), T0, uplink))
    assert value(samples, "pgw_queue_records", lane="live") == 3
    assert value(samples, "pgw_queue_records", lane="reliable") == 2
    assert value(samples, "pgw_queue_bytes") == 1234
    assert value(samples, "pgw_queue_oldest_record_timestamp_seconds", lane="reliable") == (
        1_780_000_000.5
    )
    assert value(samples, "pgw_queue_oldest_record_timestamp_seconds", lane="live") is None
    assert value(samples, "pgw_delivered_records_total", lane="live") == 100
    assert value(samples, "pgw_delivered_records_total", lane="reliable") == 7
    assert value(samples, "pgw_dropped_records_total", reason="downsampled") == 9
    assert value(samples, "pgw_upload_requests_total", result="retry") == 3


IDLE = """
import asyncio, sys  # noqa: E401
from pathlib import Path
import zmq.asyncio
from gateway.health import Problems
from services.metrics.service import service
from tests.support.configs import make_config

async def main() -> None:
    listen = sys.argv[2] if len(sys.argv) > 2 else None  # None: no [metrics] at all
    metrics = None if listen is None else {"listen": listen}
    config = make_config(Path(sys.argv[1]), {"rex1": 8899}, metrics=metrics)
    stop = asyncio.Event()
    body = asyncio.create_task(service(config).body(zmq.asyncio.Context(), stop, Problems(None, "m")))
    await asyncio.sleep(0.2)
    assert not body.done()  # it waits for the stop
    stop.set()
    await asyncio.wait_for(body, 5)
    print("prometheus_client" in sys.modules)

asyncio.run(main())
"""


@pytest.mark.parametrize("listen", [None, ""])
def test_without_a_listen_address_the_service_waits_and_loads_no_client(
    tmp_path: Path, listen: str | None
) -> None:
    argv = [sys.executable, "-c", IDLE, str(tmp_path), *([] if listen is None else [listen])]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
