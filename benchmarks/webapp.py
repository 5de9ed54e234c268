"""The reference API and web app at farm scale (issue 13), one command:
``python -m benchmarks.webapp`` (in ``make bench``).

The server is ``printer-gateway api`` as a real process on loopback, its SQLite file on the
disk. Three figures:

1. **Ingest**: 10 gateways of 20 printers (one thread each) post batches of their printers'
   statuses as fast as the server takes them: statuses per second. Target >= 2,000/s, ten
   times such a farm's real rate (200 printers at 1 Hz).
2. **Dashboard**: p50/p95 of ``GET /v1/printers`` (every printer of every gateway).
3. **A printer's chart** with a year of retained history in the file (one sample a minute,
   the retention's default, for 10 printers: 5.3 million rows; a B-tree range scan
   depends on the table's depth, which grows with the logarithm of the rows), plus its
   last day at full rate: p50/p95 of the six-hour chart (720 points) and of the seven-day
   one. Target p95 < 300 ms.

Baseline in the same run: the six-hour chart the way the API offered it before the
samples (``GET /v1/records?kind=status&printer_id=``, the raw bodies, which a page then
thins itself), the ratio against it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import requests

from console.demo import free_port
from gateway.messages import Status, Temperature, utc_text
from reference_api.store import Store
from tests.support.waiting import wait_for

GATEWAYS, PRINTERS = 10, 20
YEAR_PRINTERS = 10
MINUTE_MS = 60_000


def _status(printer: str, n: int, ts: datetime) -> dict[str, object]:
    built: dict[str, object] = msgspec.to_builtins(
        Status(
            id=f"{printer}:{n}",
            printer_id=printer,
            ts=ts,
            state="printing",
            nozzle=Temperature(209.5, 210.0),
            bed=Temperature(59.8, 60.0),
            progress_percent=min(100.0, n / 100),
            file="benchy.gx",
        )
    )
    return built


def _prefill(db: Path, now: datetime) -> None:
    """A year of one-a-minute history for YEAR_PRINTERS printers of gateway g0, and the last
    day of g0/p0 at full rate (1 Hz), written straight into the store's tables."""
    store = Store(db)
    conn = sqlite_of(store)
    end_ms = int(now.timestamp() * 1000)
    start_ms = end_ms - 365 * 86400 * 1000
    conn.execute("BEGIN")
    for p in range(YEAR_PRINTERS):
        conn.executemany(
            "INSERT INTO history VALUES ('g0', ?, ?, 'printing', 209.5, 210, 59.8, 60, ?)",
            (
                (f"p{p}", ts, (ts // MINUTE_MS) % 100)
                for ts in range(start_ms, end_ms - 86400 * 1000, MINUTE_MS)
            ),
        )
    conn.executemany(
        "INSERT INTO samples VALUES ('g0', 'p0', ?, 'printing', 209.5, 210, 59.8, 60, ?)",
        ((ts, (ts // 1000) % 100) for ts in range(end_ms - 86400 * 1000, end_ms, 1000)),
    )
    conn.execute("COMMIT")
    # The baseline's raw bodies: six hours of g0/p0's statuses as the API stored them.
    raw = [
        msgspec.convert(_status("p0", n, now - timedelta(seconds=n)), Status)
        for n in range(6 * 3600)
    ]
    for start in range(0, len(raw), 5000):
        store.store_records("g0", tuple(raw[start : start + 5000]))
    store.close()


def sqlite_of(store: Store) -> sqlite3.Connection:
    """The store's connection (the benchmark writes a year of history the fast way)."""
    return store._conn


def _latencies(call: Callable[[], requests.Response], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        answer = call()
        answer.raise_for_status()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, statistics.quantiles(times, n=20)[-1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="ingest measured this long")
    parser.add_argument("--requests", type=int, default=50, help="per latency figure")
    args = parser.parse_args()
    token = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="pg-webapp-", dir=Path.cwd()) as tmp:
        db = Path(tmp) / "api.db"
        began = time.monotonic()
        _prefill(db, now)
        prefill_s = time.monotonic() - began
        port = free_port()
        server = subprocess.Popen(
            [*_gateway(), "api", "--port", str(port), "--db", str(db)],
            env={**os.environ, "PRINTER_GATEWAY_TOKEN": token},
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            wait_for(lambda: _up(url), 30, what="the API server")
            stored = [0] * GATEWAYS
            stop = threading.Event()

            def gateway(g: int) -> None:
                session = requests.Session()
                session.headers.update(headers)
                n = 0
                while not stop.is_set():
                    ts = datetime.now(UTC)
                    batch = [_status(f"p{p}", n, ts) for p in range(PRINTERS)]
                    answer = session.post(
                        f"{url}/v1/records",
                        json={"gateway_id": f"g{g}", "records": batch},
                        timeout=30,
                    )
                    answer.raise_for_status()
                    stored[g] += PRINTERS
                    n += 1

            threads = [threading.Thread(target=gateway, args=(g,)) for g in range(GATEWAYS)]
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            rate = sum(stored) / args.seconds

            session = requests.Session()
            session.headers.update(headers)
            dashboard = _latencies(
                lambda: session.get(f"{url}/v1/printers", timeout=30), args.requests
            )

            def chart(seconds: float) -> Callable[[], requests.Response]:
                since = utc_text(now - timedelta(seconds=seconds))
                return lambda: session.get(
                    f"{url}/v1/printers/g0/p0/statuses",
                    params={"since": since, "until": utc_text(now), "points": "720"},
                    timeout=30,
                )

            six_hours = _latencies(chart(6 * 3600), args.requests)
            week = _latencies(chart(7 * 86400), args.requests)
            points = len(chart(6 * 3600)().json()["statuses"])
            raw = session.get(
                f"{url}/v1/records",
                params={"gateway_id": "g0", "printer_id": "p0", "kind": "status", "limit": "10000"},
                timeout=30,
            )
            raw_count = len(raw.json()["records"])
            baseline = _latencies(
                lambda: session.get(
                    f"{url}/v1/records",
                    params={
                        "gateway_id": "g0",
                        "printer_id": "p0",
                        "kind": "status",
                        "limit": "10000",
                    },
                    timeout=30,
                ),
                max(5, args.requests // 5),
            )
        finally:
            server.terminate()
            server.wait(30)
        size_mb = sum(f.stat().st_size for f in Path(tmp).glob("api.db*")) / 1e6
    print(
        f"prefill: a year of history for {YEAR_PRINTERS} printers in {prefill_s:.0f} s; "
        f"file {size_mb:.0f} MB"
    )
    print(
        f"ingest: {rate:,.0f} statuses/s from {GATEWAYS} gateways x {PRINTERS} printers "
        f"(target >= 2,000/s: {rate / 2000:.1f}x the target)"
    )
    print(
        f"dashboard (GET /v1/printers, {GATEWAYS * PRINTERS} printers): "
        f"p50 {dashboard[0]:.0f} ms, p95 {dashboard[1]:.0f} ms"
    )
    print(
        f"chart, six hours ({points} points): p50 {six_hours[0]:.0f} ms, p95 {six_hours[1]:.0f} ms"
    )
    print(f"chart, seven days: p50 {week[0]:.0f} ms, p95 {week[1]:.0f} ms")
    print(
        f"baseline, a chart from raw statuses as the page had to before (GET /v1/records: "
        f"{raw_count:,} of the six hours' 21,600, at most 10,000 an answer): p50 {baseline[0]:.0f} "
        f"ms, p95 {baseline[1]:.0f} ms; the six-hour chart is {baseline[1] / six_hours[1]:.1f}x "
        "faster at p95"
    )
    print("targets: ingest >= 2,000 statuses/s; dashboard and chart p95 < 300 ms")


def _gateway() -> list[str]:
    return [str(Path(sys.executable).parent / "printer-gateway")]


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


if __name__ == "__main__":
    main()
