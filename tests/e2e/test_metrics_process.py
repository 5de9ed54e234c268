"""``/metrics`` from the gateway's real processes (`run uplink control bridge metrics` and `run
poller`) against the simulator and the reference API, read with prometheus-client's own
parser: during a print (values against the simulator's truth, a command counted), while the
printer is off (temperatures absent, up = 0, poll errors counted), and an address already
taken (reported, the process keeps running, served once it is free). Loopback only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from console.demo import free_port
from gateway.health import ServiceProblems
from simulator import PrintJob, SimulatorThread
from tests.support.configs import write_config
from tests.support.http import TOKEN, ApiThread
from tests.support.processes import Services
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


class Gateway(Services):
    """The API side with the metrics service and the printer side, as real processes."""

    def __init__(self, tmp_path: Path, api: ApiThread, sim: SimulatorThread, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.runtime = tmp_path / "run"
        config = write_config(
            tmp_path,
            {"rex1": {"port": sim.port, "poll_interval_s": 0.3, "probe_interval_s": 1}},
            api_url=api.url,
            token=TOKEN,
            metrics={"listen": f"127.0.0.1:{port}"},
        )
        super().__init__(config, tmp_path / "services.log")

    def scrape(self) -> list[Sample]:
        """Every sample of one GET /metrics, parsed by prometheus-client."""
        answer = requests.get(self.url, timeout=5)
        answer.raise_for_status()
        assert answer.headers["Content-Type"].startswith("text/plain")
        families = text_string_to_metric_families(answer.text)
        return [sample for family in families for sample in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value now (None: absent; the endpoint not answering yet: None)."""
        try:
            samples = self.scrape()
        except requests.ConnectionError:
            return None
        return value_of(samples, name, **labels)


def value_of(samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else None


@contextmanager
def gateway(
    tmp_path: Path, api: ApiThread, sim: SimulatorThread, port: int | None = None
) -> Iterator[Gateway]:
    running = Gateway(tmp_path, api, sim, port or free_port())
    running.start("uplink", "control", "bridge", "metrics")
    running.start("poller")
    try:
        yield running
    finally:
        codes = running.stop_all()
        assert codes == [0] * len(codes), codes


def test_metrics_during_a_print_and_while_the_printer_is_off(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="metrics.gx", duration_s=600)))
    with ApiThread(tmp_path / "api.db") as api, gateway(tmp_path, api, sim) as running:
        wait_for(
            lambda: running.value("pgw_printer_state_info", printer="rex1", state="printing"),
            30,
            what="rex1 printing in /metrics",
        )
        samples = running.scrape()
        truth = sim.truth()
        assert value_of(samples, "pgw_printer_up", printer="rex1") == 1
        for state in ("idle", "offline", "paused", "unknown"):
            assert value_of(samples, "pgw_printer_state_info", printer="rex1", state=state) == 0
        nozzle = value_of(samples, "pgw_temperature_celsius", printer="rex1", heater="nozzle")
        bed = value_of(samples, "pgw_temperature_celsius", printer="rex1", heater="bed")
        assert nozzle is not None
        assert bed is not None
        assert abs(nozzle - truth["nozzle"][0]) < 15  # type: ignore[index]  # it is heating
        assert abs(bed - truth["bed"][0]) < 10  # type: ignore[index]
        target = value_of(
            samples, "pgw_target_temperature_celsius", printer="rex1", heater="nozzle"
        )
        assert target == 210
        ratio = value_of(samples, "pgw_print_progress_ratio", printer="rex1")
        assert ratio is not None
        assert 0 <= ratio <= 1
        progress = truth["progress"]
        assert isinstance(progress, tuple)
        assert abs(ratio - progress[0] / progress[1]) < 0.05
        assert value_of(samples, "pgw_build_info", version="0.1.0") == 1
        assert value_of(samples, "pgw_prints_total", printer="rex1", outcome="completed") == 0
        for sample in samples:  # never a file name as a label
            assert "metrics.gx" not in sample.labels.values()
        # The uplink's figures: statuses delivered from memory, posts that worked.
        wait_for(lambda: (running.value("pgw_delivered_records_total", lane="live") or 0) > 0, 30)
        wait_for(lambda: (running.value("pgw_upload_requests_total", result="delivered") or 0) > 0)
        assert running.value("pgw_queue_records", lane="reliable") is not None
        assert running.value("pgw_queue_bytes") is not None

        created = api.post(
            "/v1/commands", {"gateway_id": "gw", "printer_id": "rex1", "type": "pause"}
        )
        assert created.status_code == 201, created.text
        wait_for(
            lambda: running.value("pgw_commands_total", type="pause", outcome="done") == 1,
            30,
            what="the pause counted",
        )
        wait_for(
            lambda: running.value("pgw_printer_state_info", printer="rex1", state="paused"), 30
        )

        sim.power_off()  # connects time out: unreachable
        wait_for(
            lambda: running.value("pgw_printer_up", printer="rex1") == 0,
            60,
            what="rex1 down in /metrics",
        )
        samples = running.scrape()
        assert value_of(samples, "pgw_printer_state_info", printer="rex1", state="offline") == 1
        measured = {
            s.name
            for s in samples
            if s.labels.get("printer") == "rex1"
            and s.name.startswith(("pgw_temperature", "pgw_target", "pgw_print_progress"))
        }
        assert measured == set()  # absent, not frozen at the last reading
        errors = value_of(samples, "pgw_poll_errors_total", printer="rex1", reason="unreachable")
        assert errors is not None
        assert errors >= 1

        sim.power_on()
        wait_for(
            lambda: running.value("pgw_temperature_celsius", printer="rex1", heater="nozzle"),
            60,
            what="temperatures back after power on",
        )


def test_an_address_in_use_is_reported_and_served_once_free(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    problems = tmp_path / "run" / "problems" / "metrics.json"

    def reported() -> bool:
        if not problems.exists():
            return False
        board = msgspec.json.decode(problems.read_bytes(), type=ServiceProblems)
        return any("cannot listen" in p.reason for p in board.problems)

    with ApiThread(tmp_path / "api.db") as api, gateway(tmp_path, api, sim, port) as running:
        wait_for(reported, 30, what="the metrics service to report the address in use")
        assert all(p.poll() is None for p in running.processes.values())  # nothing crashed
        holder.close()
        wait_for(lambda: running.value("pgw_printer_up", printer="rex1") is not None, 30)
        wait_for(lambda: not reported(), 10, what="the problem cleared")
