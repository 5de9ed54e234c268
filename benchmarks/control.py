"""Command latency (issue 5): ``python -m benchmarks.control`` (part of ``make bench``).

The simulator prints; the reference API and the three services run as real processes. For
each of N pause commands: queued at the API (t0) -> ``~M25`` on the printer's wire (t1) ->
result ``done`` readable at the API (t2). The print is resumed directly on the simulator
between commands. Prints p50/p95 of t1-t0 (target p95 < 1 s) and t2-t0.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import requests

from console.demo import free_port
from simulator import PrinterModel, PrinterSimulator, PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.waiting import wait_for

TOKEN = "bench-token"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=50)
    args = parser.parse_args()
    model = PrinterModel()
    model.nozzle.tau_s = model.bed.tau_s = 0.05
    with tempfile.TemporaryDirectory() as tmp, SimulatorThread(PrinterSimulator(model)) as sim:
        root = Path(tmp)
        sim.call(lambda: model.start_print(PrintJob(duration_s=3600)))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = write_config(
            root, {"rex1": {"port": sim.port}}, gateway_id="bench", api_url=url, token=TOKEN
        )
        env = {**os.environ, "PRINTER_GATEWAY_TOKEN": TOKEN}
        processes = [
            Cli().start(
                "api",
                "--port",
                str(port),
                "--db",
                str(root / "api.db"),
                env=env,
                stderr=subprocess.DEVNULL,
            )
        ]
        processes += [
            Cli(config).start("run", name, env=env, stderr=subprocess.DEVNULL)
            for name in ("uplink", "poller", "control")
        ]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            wait_for(lambda: _printers(session, url), 30, every_s=0.002)
            to_wire, to_result = [], []
            for n in range(args.commands):
                pauses_before = _m25(sim)
                t0 = time.monotonic()
                created = session.post(
                    f"{url}/v1/commands",
                    json={"gateway_id": "bench", "printer_id": "rex1", "type": "pause"},
                    timeout=5,
                )
                command_id = created.json()["id"]
                wait_for(partial(_more_pauses, sim, pauses_before), 30, every_s=0.002)
                t1 = time.monotonic()
                wait_for(
                    partial(_done, session, f"{url}/v1/commands/{command_id}"), 30, every_s=0.002
                )
                t2 = time.monotonic()
                to_wire.append(t1 - t0)
                to_result.append(t2 - t0)
                sim.call(model.resume)
                print(f"\rcommand {n + 1}/{args.commands}", end="", file=sys.stderr)
            print(file=sys.stderr)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=20)
    print(
        f"queued -> ~M25 on the wire: p50 {statistics.median(to_wire) * 1000:.0f} ms, "
        f"p95 {_percentile(to_wire, 0.95) * 1000:.0f} ms (target p95 < 1000 ms)"
    )
    print(
        f"queued -> 'done' at the API: p50 {statistics.median(to_result) * 1000:.0f} ms, "
        f"p95 {_percentile(to_result, 0.95) * 1000:.0f} ms  ({args.commands} commands)"
    )


def _printers(session: requests.Session, url: str) -> bool:
    try:
        return bool(
            session.get(f"{url}/v1/printers", params={"gateway_id": "bench"}, timeout=2).json()[
                "printers"
            ]
        )
    except requests.RequestException:
        return False


def _more_pauses(sim: SimulatorThread, before: int) -> bool:
    return _m25(sim) > before


def _done(session: requests.Session, command_url: str) -> bool:
    return bool(session.get(command_url, timeout=5).json().get("outcome") == "done")


def _m25(sim: SimulatorThread) -> int:
    return sum(1 for entry in sim.wire() if entry.what == "in" and entry.text == "~M25")


if __name__ == "__main__":
    main()
