"""A hostile printer beside a healthy one, against the real poller and uplink processes and
the reference API: every kind of garbage in turn. The poller process never dies, the healthy
printer's statuses keep their cadence at the API, and the logs stay one line per record."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path

import pytest

from simulator import PrinterModel, PrinterSimulator, PrintJob, SimulatorThread
from tests.support.http import ApiThread
from tests.support.processes import Gateway
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
MODES = ("huge_numbers", "non_finite", "binary", "endless", "nasty_text")


def _statuses(api: ApiThread, printer: str) -> list[dict[str, object]]:
    records = api.get(
        "/v1/records", gateway_id="gw", printer_id=printer, kind="status", limit=10000
    )
    return list(records.json()["records"])


def test_every_kind_of_garbage_leaves_the_poller_and_the_other_printer_alone(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    model = PrinterModel(completed_hold_s=0.5)
    with (
        SimulatorThread(PrinterSimulator(model)) as bad,
        ApiThread(tmp_path / "api.db") as api,
    ):
        bad.call(lambda: model.start_print(PrintJob(duration_s=600)))
        gateway = Gateway(tmp_path, api.url, sim, more_printers={"bad": bad.port})
        gateway.start("uplink")
        gateway.start("poller")
        poller = gateway.processes["poller"]
        try:
            wait_for(lambda: _statuses(api, "bad") and _statuses(api, "rex1"))
            started = len(_statuses(api, "rex1"))
            for mode in MODES:
                bad.set_faults(hostile=mode)
                time.sleep(2.5)
                assert poller.poll() is None, f"the poller died on {mode}"
            bad.set_faults(hostile="none")
            wait_for(lambda: _statuses(api, "bad")[-1]["state"] == "printing")
        finally:
            codes = gateway.stop_all()
        good = _statuses(api, "rex1")[started:]
        bad_states = {s["state"] for s in _statuses(api, "bad")}
    log = (tmp_path / "services.log").read_text(errors="replace")
    assert codes == [0, 0], log
    assert "Traceback" not in log
    moments = [datetime.fromisoformat(str(s["ts"])) for s in good]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
    assert len(good) > 40
    assert max(gaps) < 1.5  # polled every 0.2 s, whatever the other printer sent
    assert "error" in bad_states
    # The printer's escape codes and newlines never reach the log raw: one line per record.
    assert "\x1b" not in log
    assert "\\x1b[2J" in log
    assert all(line[:4].isdigit() for line in log.splitlines() if line)
