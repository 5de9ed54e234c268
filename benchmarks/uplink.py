"""Uplink benchmarks (issue 4), one command: ``make bench`` (or ``python -m benchmarks.uplink``).

1. Records made durable per second, acknowledged after commit, end to end over ZeroMQ
   (RecordSender -> uplink receiver -> SQLite group commit -> ack), next to persist-queue's
   SQLiteAckQueue doing the same promise (one committed put per record) on the same disk,
   in the same run. Target ratio >= 10x.
2. Drain rate of a 100,000-record backlog into the reference API over real HTTP (uvicorn on
   loopback). Target >= 5,000 records/s.
3. Bytes written per record: this process's write_bytes (/proc/self/io) during step 1, and
   the block device's sectors written where /sys/block allows.

Numbers vary with the machine and its load; the ratio in step 1 is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import zmq.asyncio

from console.demo import free_port
from gateway.bus import RecordSender
from gateway.config import Config, Secret, Token
from gateway.layout import Layout
from gateway.messages import Status, Temperature, utc_now
from services.uplink.queue import DurableQueue
from services.uplink.service import DeliveryThread, Uplink
from tests.support.cli import Cli
from tests.support.configs import make_config
from tests.support.http import answers
from tests.support.waiting import wait_for


def _config(root: Path, api_url: str = "http://127.0.0.1:9") -> Config:
    return make_config(
        root, {"p1": {}}, gateway_id="bench", api_url=api_url, uplink={"max_queue_mb": 4096}
    )


def _records(n: int, prefix: str) -> list[Status]:
    ts = utc_now()
    return [
        Status(
            id=f"{prefix}{i}",
            printer_id=f"p{i % 3}",
            ts=ts,
            state="printing",
            nozzle=Temperature(209.5, 210.0),
            bed=Temperature(59.8, 60.0),
            progress_percent=42.0,
            file="benchy.gx",
        )
        for i in range(n)
    ]


def _write_bytes() -> int:
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("write_bytes"))


def _device_sectors(path: Path) -> tuple[str, int] | None:
    try:
        dev = os.stat(path).st_dev
        name = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve().name
        stat = Path(f"/sys/block/{name}/stat")
        if not stat.exists():
            stat = Path(f"/sys/class/block/{name}/stat")
        return name, int(stat.read_text().split()[6])
    except (OSError, ValueError, IndexError):
        return None


async def _gateway_rate(root: Path, n: int) -> tuple[float, int]:
    config = _config(root)
    ctx = zmq.asyncio.Context()
    stop = asyncio.Event()
    uplink = Uplink(config, Token(Secret("t"), "bench"), ctx)
    uplink.delivery.stopping.set()  # measure persistence only: nothing is delivered
    acked: set[str] = set()
    sender = RecordSender(ctx, Layout.of(config).records_endpoint, acked.update)
    tasks = [asyncio.create_task(uplink.run(stop)), asyncio.create_task(sender.run(stop))]
    records = _records(n, "g")
    written = _write_bytes()
    began = time.perf_counter()
    for record in records:
        sender.submit(record)
    while len(acked) < n:  # noqa: ASYNC110 - polling keeps the sender's callback trivial
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - began
    written = _write_bytes() - written
    stop.set()
    await asyncio.gather(*tasks)
    sender.close()
    ctx.term()
    return n / elapsed, written


def _persist_queue_rate(root: Path, n: int) -> float:
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(root / "pq"), auto_commit=True, multithreading=True)
    payloads = [record for record in _records(n, "q")]
    began = time.perf_counter()
    for record in payloads:
        queue.put(record.id)  # committed on return: the same promise as our acknowledgement
    return n / (time.perf_counter() - began)


def _drain_rate(root: Path, n: int) -> float:
    """The API runs as its own process, as it would in production (no shared GIL)."""
    port = free_port()
    env = {**os.environ, "PRINTER_GATEWAY_TOKEN": "t"}
    db = str(root / "api.db")
    with Cli().start(
        "api", "--port", str(port), "--db", db, env=env, stderr=subprocess.DEVNULL
    ) as api:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(partial(answers, f"{url}/healthz"), 20, what="the API to start")
            config = _config(root / "drain", url)
            queue = DurableQueue(Layout.of(config).queue_db, 10**10)
            for start in range(0, n, 5000):
                queue.accept(_records(min(5000, n - start), f"d{start}-"))
            queue.close()
            thread = DeliveryThread(config, Token(Secret("t"), "bench"), threading.Event())
            check = DurableQueue(Layout.of(config).queue_db, 10**10)
            began = time.perf_counter()
            thread.start()
            while sum(check.stats().depth_by_kind.values()) > 0:
                time.sleep(0.05)
            elapsed = time.perf_counter() - began
            thread.stopping.set()
            thread.join(30)
            check.close()
        finally:
            api.terminate()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=20_000, help="records for the persistence run"
    )
    parser.add_argument(
        "--baseline-records", type=int, default=2_000, help="records for persist-queue"
    )
    parser.add_argument("--backlog", type=int, default=100_000, help="records in the drain run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        sectors_before = _device_sectors(root)
        rate, written = asyncio.run(_gateway_rate(root, args.records))
        sectors_after = _device_sectors(root)
        baseline = _persist_queue_rate(root, args.baseline_records)
        print(f"durable+acked over ZeroMQ: {rate:10.0f} records/s  ({args.records} records)")
        puts = args.baseline_records
        print(f"persist-queue SQLiteAckQueue: {baseline:7.0f} records/s  ({puts} committed puts)")
        print(f"ratio: {rate / baseline:.1f}x  (target >= 10x)")
        print(f"bytes written per record (this process): {written / args.records:.0f}")
        if sectors_before and sectors_after:
            per_record = (sectors_after[1] - sectors_before[1]) * 512 / args.records
            device = sectors_before[0]
            print(f"device {device}: {per_record:.0f} bytes per record (includes other writers)")
        else:
            print("device bytes per record: /sys/block not readable here")
        drain = _drain_rate(root, args.backlog)
        backlog = args.backlog
        print(f"drain {backlog} records into the reference API: {drain:.0f} records/s (>= 5000)")


if __name__ == "__main__":
    main()
