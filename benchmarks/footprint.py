"""What a Pi feels (issue 11), one command: ``python -m benchmarks.footprint`` (in ``make bench``).

The whole gateway under supervisord (``printer-gateway up``) against simulated printers
polled every second, ``runtime_dir`` on tmpfs (/dev/shm) as on a Pi, ``data_dir`` on the
disk. For each scenario, after a warm-up, over ``--seconds``:

* device bytes written (``/proc/<pid>/io`` write_bytes, every gateway process and
  supervisord) per status record and per printer-hour;
* PSS of each process and in total (``/proc/<pid>/smaps_rollup``: shared pages counted once);
* CPU seconds per printer.

Scenarios: 1 and 20 printers printing with the API up; the same with the API down (the live
lane spills one status per printer per ``offline_status_interval_s``, plus changes); one
idle printer (probing only). One notification URL is configured, as an owner would.

Baseline, in the same run on the same disk: persist-queue's SQLiteAckQueue storing each
status in its own transaction (put, then ack), the design the two lanes replace; the ratio
is its bytes per record over the gateway's. Targets (issue 11): at most 500 B per status with
one printer and the API up (under 2 MB per printer-hour), at most 10 MB per printer-hour with
the API down, at most 80 MiB PSS with one printer and 100 MiB with 20.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import requests

from console.demo import free_port
from simulator import PrinterModel, PrinterSimulator, PrintJob, SimulatorThread
from tests.support.waiting import wait_for

TMPFS = Path("/dev/shm")
SERVICES = ("poller", "uplink", "control", "bridge")


@dataclass
class Recovery:
    """After an outage: how soon the API hears from the gateway again, and what it gets."""

    outage_s: float
    first_record_s: float  # from the API answering to the first record stored
    statuses: int  # statuses of the outage delivered afterwards (the spill)
    in_ts_order: bool  # each printer's arrive oldest first

    def report(self) -> str:
        order = "in ts order" if self.in_ts_order else "NOT in ts order"
        return (
            f"recovery after {self.outage_s:.0f} s down: first record {self.first_record_s:.2f} s "
            f"after the API answered; {self.statuses} statuses of the outage, {order}"
        )


@dataclass
class Measure:
    """One scenario's figures."""

    name: str
    printers: int
    seconds: float
    written_by: dict[str, int]
    statuses: int
    cpu_s: float
    pss_mib: dict[str, float]
    recovery: Recovery | None = None

    @property
    def written(self) -> int:
        """Bytes written by every process together."""
        return sum(self.written_by.values())

    def report(self) -> str:
        per_hour = self.written / self.printers * 3600 / self.seconds / 1e6
        per_status = self.written / self.statuses if self.statuses else float("nan")
        pss = ", ".join(f"{name} {mib:.1f}" for name, mib in sorted(self.pss_mib.items()))
        cpu = 100 * self.cpu_s / self.seconds / self.printers
        writers = ", ".join(f"{name} {size} B" for name, size in sorted(self.written_by.items()))
        return (
            f"{self.name:<26} written {self.written:>9} B  {per_status:8.0f} B/status  "
            f"{per_hour:6.2f} MB/printer-hour  CPU {cpu:.2f} % of a core per printer\n"
            f"{'':<26} PSS {sum(self.pss_mib.values()):.1f} MiB ({pss})\n"
            f"{'':<26} written by {writers}"
            + (f"\n{'':<26} {self.recovery.report()}" if self.recovery else "")
        )


def _proc_value(pid: int, name: str, field: str) -> int:
    with open(f"/proc/{pid}/{name}") as lines:
        return int(next(line for line in lines if line.startswith(field)).split()[1])


def _usage(pid: int) -> tuple[int, float]:
    """Bytes written to the device so far, and CPU seconds."""
    return _proc_value(pid, "io", "write_bytes"), _cpu_s(pid)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _services(supervisord: int) -> dict[str, int]:
    """supervisord and its processes, each named by the services it runs ("uplink+control")."""
    found = {"supervisord": supervisord}
    children = subprocess.run(
        ["pgrep", "-P", str(supervisord)], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in children:
        with open(f"/proc/{pid}/cmdline") as cmdline:
            argv = cmdline.read().split("\0")
        if "run" in argv:
            hosted = [word for word in argv[argv.index("run") + 1 :] if word in SERVICES]
            found["+".join(hosted)] = int(pid)
    return found


@contextlib.contextmanager
def _simulators(
    n: int, printing: bool, heater_tau_s: float = 0.5
) -> Iterator[list[SimulatorThread]]:
    """`n` simulated printers, each printing a ten-hour job when `printing`."""
    with contextlib.ExitStack() as stack:
        sims = []
        for _ in range(n):
            model = PrinterModel()
            # Heaters that settle within the warm-up: the window measures a print under way,
            # not its start (a start, the end of its warm-up, a pause and an end each cost
            # one journal write of a few pages: per print, not per status).
            model.nozzle.tau_s = model.bed.tau_s = heater_tau_s
            sim = stack.enter_context(SimulatorThread(PrinterSimulator(model)))
            if printing:
                sim.call(partial(model.start_print, PrintJob(duration_s=36_000)))
            sims.append(sim)
        yield sims


def _scenario(
    root: Path, name: str, printers: int, printing: bool, api_up: bool, seconds: float
) -> Measure:
    folder = root / name.replace(" ", "-")
    runtime = Path(tempfile.mkdtemp(prefix="pg-footprint-", dir=TMPFS if TMPFS.is_dir() else None))
    folder.mkdir(parents=True)
    token = secrets.token_urlsafe(24)
    port = free_port()
    env = {**os.environ, "PRINTER_GATEWAY_TOKEN": token}
    gateway = [str(Path(sys.executable).parent / "printer-gateway")]
    api = None
    recovery = None
    if api_up:
        api = subprocess.Popen(
            [*gateway, "api", "--port", str(port), "--db", str(folder / "api.db")],
            env=env,
            stderr=subprocess.DEVNULL,
        )
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        with _simulators(printers, printing) as sims:
            config = folder / "gateway.toml"
            text = (
                f'[gateway]\nid = "pi"\ndata_dir = "{folder / "data"}"\nruntime_dir = "{runtime}"\n'
                f'[api]\nurl = "http://127.0.0.1:{port}"\ntimeout_s = 2\n'
                '[notify]\nurls = ["json://127.0.0.1:9/hook"]\n'
            )
            for index, sim in enumerate(sims):
                text += (
                    f'[[printers]]\nid = "p{index}"\nhost = "127.0.0.1"\nport = {sim.port}\n'
                    "poll_interval_s = 1\n"
                )
            config.write_text(text)
            began = time.monotonic()
            up = subprocess.Popen(
                [*gateway, "--config", str(config), "up"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for(lambda: len(_services(up.pid)) == 3, 30, what="the processes to start")
                time.sleep(10)  # warm-up: imports done, connections made, first writes over
                pids = _services(up.pid)

                def statuses() -> int:
                    if not api_up:
                        return 0
                    answer = session.get(
                        f"http://127.0.0.1:{port}/v1/records",
                        params={"gateway_id": "pi", "kind": "status", "limit": "10000"},
                        timeout=60,
                    )
                    return len(answer.json()["records"])

                before = {n: _usage(p) for n, p in pids.items()}
                delivered = statuses()
                time.sleep(seconds)
                after = {n: _usage(p) for n, p in pids.items()}
                made = statuses() - delivered if api_up else int(printers * seconds)
                pss = {n: _proc_value(p, "smaps_rollup", "Pss:") / 1024 for n, p in pids.items()}
                if not api_up:  # the API comes back: time the first delivery, check the spill
                    outage_s = time.monotonic() - began
                    api = subprocess.Popen(
                        [*gateway, "api", "--port", str(port), "--db", str(folder / "api.db")],
                        env=env,
                        stderr=subprocess.DEVNULL,
                    )
                    recovery = _recover(session, port, outage_s)
            finally:
                up.send_signal(signal.SIGTERM)
                up.wait(60)
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        shutil.rmtree(runtime, ignore_errors=True)
    return Measure(
        name,
        printers,
        seconds,
        {n: after[n][0] - before[n][0] for n in pids},
        made,
        sum(after[n][1] - before[n][1] for n in pids),
        pss,
        recovery,
    )


def _recover(session: requests.Session, port: int, outage_s: float) -> Recovery:
    """The API is starting on `port`: when it answers, how long until the first record; then
    the statuses made during the outage (until no more have come for 3 s), and whether each
    printer's arrived oldest first (the reference API lists records in arrival order)."""
    url = f"http://127.0.0.1:{port}/v1/records"
    params = {"gateway_id": "pi", "kind": "status", "limit": "100000"}

    def statuses() -> list[dict[str, str]] | None:
        try:
            answer = session.get(url, params=params, timeout=5)
        except requests.ConnectionError:
            return None
        return list(answer.json()["records"]) if answer.ok else None

    wait_for(lambda: statuses() is not None, 30, every_s=0.01, what="the API to answer")
    answered, back = time.monotonic(), datetime.now(UTC)
    wait_for(statuses, 60, every_s=0.01, what="a first record after the outage")
    first = time.monotonic() - answered

    # The spill: statuses made before the live lane's lag (LAG_S, 3 s) ended the last wait
    # before the API came back. Younger ones were still in memory then and go out live, at
    # once, ahead of the spill's older ones: the API orders statuses by ts (§4.3), so only
    # the spill's own order is the lane's promise ("delivered after the outage, oldest first").
    spilled_before = back - timedelta(seconds=5)

    def of_the_outage() -> list[dict[str, str]]:
        return [r for r in statuses() or [] if datetime.fromisoformat(r["ts"]) < spilled_before]

    count, still = -1, time.monotonic()
    while time.monotonic() - still < 3:
        got = len(of_the_outage())
        if got != count:
            count, still = got, time.monotonic()
        time.sleep(0.2)
    spilled = of_the_outage()
    by_printer: dict[str, list[datetime]] = {}
    for record in spilled:
        by_printer.setdefault(record["printer_id"], []).append(datetime.fromisoformat(record["ts"]))
    in_order = all(times == sorted(times) for times in by_printer.values())
    return Recovery(outage_s, first, len(spilled), in_order)


def _baseline(root: Path, n: int) -> float:
    """Device bytes per status for persist-queue's SQLiteAckQueue: one transaction per put and
    per ack, as a queue that stores every record would."""
    from persistqueue import SQLiteAckQueue

    from gateway.messages import Status, json_encoder, utc_now

    queue = SQLiteAckQueue(str(root / "baseline"), auto_commit=True, multithreading=True)
    body = json_encoder.encode(
        Status(id="pi:p0:x:1", printer_id="p0", ts=utc_now(), state="printing")
    )
    before = _proc_value(os.getpid(), "io", "write_bytes")
    for _ in range(n):
        queue.put(body)
        queue.ack(queue.get())
        os.sync()  # what the device must take for that promise, not what the page cache holds
    written = _proc_value(os.getpid(), "io", "write_bytes") - before
    return written / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured per scenario")
    parser.add_argument("--many", type=int, default=20, help="printers in the large scenarios")
    parser.add_argument("--baseline-records", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pg-footprint-", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        measures = [
            _scenario(root, "1 printer, API up", 1, True, True, args.seconds),
            _scenario(root, "1 printer, API down", 1, True, False, args.seconds),
            _scenario(root, "1 printer idle, API up", 1, False, True, args.seconds),
            _scenario(root, f"{args.many} printers, API up", args.many, True, True, args.seconds),
            _scenario(
                root, f"{args.many} printers, API down", args.many, True, False, args.seconds
            ),
        ]
        baseline = _baseline(root, args.baseline_records)
    for measure in measures:
        print(measure.report())
    up = measures[0]
    per_status = up.written / up.statuses if up.statuses else float("nan")
    print(
        f"baseline (SQLiteAckQueue, a transaction per put and per ack): {baseline:.0f} B/status; "
        f"the gateway {per_status:.0f} B/status"
        + (f" ({baseline / per_status:.0f}x less)" if per_status > 0 else " (nothing at all)")
    )
    print(
        "targets: <= 500 B/status and < 2 MB/printer-hour (1 printer, API up); <= 10 MB/"
        "printer-hour (API down); PSS <= 80 MiB (1 printer), <= 100 MiB (20 printers)"
    )


if __name__ == "__main__":
    main()
