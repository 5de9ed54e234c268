"""The MQTT bridge (issue 14), one command: ``python -m benchmarks.mqtt`` (in ``make bench``).

A real Mosquitto on loopback, the simulator printing, the reference API, and the gateway as
real processes (``run uplink control bridge`` and ``run poller``). Three figures:

1. **Command latency**: a pause published on ``P/G/R/command`` -> ``~M25`` on the printer's
   wire, p50/p95 over N (the print is resumed on the simulator between them). Baseline in
   the same run: the same pause queued at the API (``POST /v1/commands``).
2. **State latency**: the printer pauses (on the simulator) -> the retained ``state`` on
   the broker says ``paused``, p50/p95.
3. **Footprint**: the API-side process with 20 printers printing, with ``[mqtt]`` and
   without, in the same run: PSS and CPU; the difference is the bridge's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from benchmarks.footprint import _cpu_s, _proc_value, _simulators
from simulator import SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.http import TOKEN, ApiThread
from tests.support.mosquitto import Broker, Watcher
from tests.support.waiting import wait_for

P = "bench"


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


@contextlib.contextmanager
def _gateway(config: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    cli = Cli(config)
    processes = {
        "api-side": cli.start(
            "run",
            "uplink",
            "control",
            "bridge",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "poller": cli.start("run", "poller", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    try:
        yield processes
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)


def _state(watcher: Watcher, topic: str) -> str | None:
    """The printer state in the last status on `topic`, or None before any."""
    seen = watcher.on(topic)
    return None if not seen else str(json.loads(seen[-1].payload).get("state"))


def _pauses_on_wire(sim: SimulatorThread, since: float) -> float | None:
    for entry in sim.wire():
        if entry.t >= since and entry.what == "in" and entry.text.startswith("~M25"):
            return entry.t
    return None


def _latencies(root: Path, broker: Broker, n: int) -> tuple[list[float], list[float], list[float]]:
    with (
        _simulators(1, printing=True, heater_tau_s=0.05) as [sim],
        ApiThread(root / "api.db") as api,
    ):
        config = write_config(
            root,
            {"rex1": {"port": sim.port, "poll_interval_s": 1.0}},
            api_url=api.url,
            token=TOKEN,
            mqtt={"url": broker.url, "topic_prefix": P},
        )
        state_topic = f"{P}/gw/rex1/state"
        with Watcher(broker, [state_topic]) as client, _gateway(config):
            wait_for(lambda: _state(client, state_topic) == "printing", 60, what="printing")
            via_mqtt, via_api, state = [], [], []
            for i in range(n):
                began = time.monotonic()
                body = json.dumps({"type": "pause", "id": f"b-{uuid.uuid4().hex[:8]}"})
                client.publish(f"{P}/gw/rex1/command", body.encode())
                on_wire = wait_for(partial(_pauses_on_wire, sim, began), 30)
                via_mqtt.append(on_wire - began)
                wait_for(lambda: sim.truth()["status"] == "PAUSED", 10)
                sim.call(sim.sim.model.resume)
                wait_for(lambda: _state(client, state_topic) == "printing", 30)
                if i % 2 == 0:  # the baseline, interleaved: the same pause from the API
                    began = time.monotonic()
                    created = api.post(
                        "/v1/commands",
                        {"gateway_id": "gw", "printer_id": "rex1", "type": "pause"},
                    )
                    created.raise_for_status()
                    on_wire = wait_for(partial(_pauses_on_wire, sim, began), 30)
                    via_api.append(on_wire - began)
                    wait_for(lambda: sim.truth()["status"] == "PAUSED", 10)
                    sim.call(sim.sim.model.resume)
                    wait_for(lambda: _state(client, state_topic) == "printing", 30)
                if i % 5 == 0:  # the printer pauses by itself: how soon MQTT says so
                    began = time.monotonic()
                    sim.call(sim.sim.model.pause)
                    wait_for(lambda: _state(client, state_topic) == "paused", 30)
                    state.append(time.monotonic() - began)
                    sim.call(sim.sim.model.resume)
                    wait_for(lambda: _state(client, state_topic) == "printing", 30)
    return via_mqtt, via_api, state


def _footprint(root: Path, broker: Broker, printers: int, seconds: float) -> dict[str, float]:
    """PSS (MiB) and CPU (% of a core) of the API-side process, with and without [mqtt]."""
    figures = {}
    with (
        _simulators(printers, printing=True, heater_tau_s=0.05) as sims,
        ApiThread(root / "api.db") as api,
    ):
        table = {f"p{i}": {"port": s.port, "poll_interval_s": 1.0} for i, s in enumerate(sims)}
        for name, mqtt in (("without", None), ("with", {"url": broker.url, "topic_prefix": P})):
            folder = root / name
            folder.mkdir()
            config = (
                write_config(folder, table, api_url=api.url, token=TOKEN, mqtt=mqtt)
                if mqtt
                else write_config(folder, table, api_url=api.url, token=TOKEN)
            )
            with _gateway(config) as processes:
                pid = processes["api-side"].pid
                time.sleep(10)  # warm-up
                cpu0 = _cpu_s(pid)
                time.sleep(seconds)
                figures[f"cpu_{name}"] = 100 * (_cpu_s(pid) - cpu0) / seconds
                figures[f"pss_{name}"] = _pss_mib(pid)
    return figures


def _pss_mib(pid: int) -> float:
    return _proc_value(pid, "smaps_rollup", "Pss:") / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--printers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pg-mqtt-") as tmp:
        root = Path(tmp)
        broker = Broker(root)
        broker.start()
        try:
            (root / "latency").mkdir()
            via_mqtt, via_api, state = _latencies(root / "latency", broker, args.commands)
            (root / "footprint").mkdir()
            figures = _footprint(root / "footprint", broker, args.printers, args.seconds)
        finally:
            broker.close()
    print(
        f"pause published on MQTT -> ~M25 on the wire ({len(via_mqtt)}): {_percentiles(via_mqtt)}"
    )
    print(f"baseline, pause queued at the API -> ~M25 ({len(via_api)}): {_percentiles(via_api)}")
    print(f"printer paused -> retained state says paused ({len(state)}): {_percentiles(state)}")
    print(
        f"API-side process, {args.printers} printers printing: PSS {figures['pss_with']:.1f} MiB "
        f"with [mqtt], {figures['pss_without']:.1f} MiB without "
        f"(the bridge: {figures['pss_with'] - figures['pss_without']:+.1f} MiB); CPU "
        f"{figures['cpu_with']:.2f} % of a core with, {figures['cpu_without']:.2f} % without"
    )


if __name__ == "__main__":
    main()
