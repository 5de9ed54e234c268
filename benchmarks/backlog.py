"""Control under a backlog of open commands (issue 9): ``python -m benchmarks.backlog``.

The reference API holds N open light commands for one simulated printer; uplink, poller and
control run as real processes. Every few seconds: control's RSS (from /proc) and the results
the API has received. The baseline is control's RSS with no command open, measured in the
same run before the backlog is queued; the ratio says how much the backlog costs in memory.
Target: a flat RSS while the backlog drains (bounded, not growing with N or with time).
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from functools import partial
from pathlib import Path

import requests

from console.demo import free_port
from simulator import PrinterModel, PrinterSimulator, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.http import answers
from tests.support.waiting import wait_for

TOKEN = "bench-token-backlog-0123"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=12_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatorThread(PrinterSimulator(PrinterModel())) as sim,
    ):
        root = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = write_config(
            root, {"rex1": {"port": sim.port}}, gateway_id="bench", api_url=url, token=TOKEN
        )
        os.chmod(config, 0o600)
        env = {**os.environ, "PRINTER_GATEWAY_TOKEN": TOKEN}
        log = (root / "services.log").open("ab")
        api = Cli().start(
            "api",
            "--port",
            str(port),
            "--db",
            str(root / "api.db"),
            env=env,
            stdout=log,
            stderr=log,
        )
        services = {
            name: Cli(config).start("run", name, env=env, stdout=log, stderr=log)
            for name in ("uplink", "poller", "control")
        }
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            wait_for(partial(answers, f"{url}/healthz"), 20, every_s=0.05, what="the API to start")
            time.sleep(3.0)
            baseline = _rss_mb(services["control"].pid)
            for n in range(args.commands):
                command = {"gateway_id": "bench", "printer_id": "rex1", "type": "light"}
                session.post(
                    f"{url}/v1/commands", json={**command, "params": {"on": n % 2 == 0}}, timeout=10
                )
            print(f"{args.commands} commands queued; control RSS with none open: {baseline:.0f} MB")
            began = time.monotonic()
            peak = baseline
            query: dict[str, str | int] = {
                "gateway_id": "bench",
                "kind": "command_result",
                "limit": 10_000,
            }
            while time.monotonic() - began < args.seconds:
                time.sleep(5.0)
                rss = _rss_mb(services["control"].pid)
                peak = max(peak, rss)
                results = session.get(f"{url}/v1/records", params=query, timeout=30).json()[
                    "records"
                ]
                print(
                    f"t={time.monotonic() - began:5.1f} s  control RSS {rss:5.1f} MB "
                    f"({rss / baseline:.2f}x baseline)  results so far {len(results)}"
                )
            elapsed = time.monotonic() - began
            print(
                f"peak control RSS {peak:.0f} MB = {peak / baseline:.2f}x the idle baseline; "
                f"{len(results) / elapsed:.0f} results/s"
            )
        finally:
            for process in [*services.values(), api]:
                process.send_signal(signal.SIGTERM)
            for process in [*services.values(), api]:
                process.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
