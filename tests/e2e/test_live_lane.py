"""The live lane with the uplink as a real process (issue 11): statuses cost no disk write
while the API keeps up, spill downsampled while it does not, and survive a SIGKILL once
spilled."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from gateway.bus import RecordSender
from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import PrinterState, Status
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.http import TOKEN, ApiThread
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def status(n: int, printer: str = "p1", state: PrinterState = "printing") -> Status:
    """The n-th status of a printer (ts n tenths of a second after T0)."""
    return Status(
        id=f"{printer}-{n}", printer_id=printer, ts=T0 + timedelta(seconds=n / 10), state=state
    )


async def start_uplink(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await Cli(config).start_async(
            "run", "uplink", stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )


def statuses_at(api: ApiThread) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = api.get(
        "/v1/records", gateway_id="gw", kind="status", limit=10_000
    ).json()["records"]
    return records


def spilled_ids(config: Config) -> list[str]:
    """The ids of statuses kept on disk, read as `queue peek` would (read-only)."""
    path = Layout.of(config).queue_db
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM records WHERE kind = 'status'")]
    finally:
        conn.close()


def footprint(config: Config) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file of the queue (database, WAL, shared memory index)."""
    queue = Layout.of(config).queue_db
    files = sorted(queue.parent.glob(queue.name + "*"))
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in files}


def test_statuses_touch_no_disk_while_the_api_keeps_up(
    tmp_path: Path, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        config_path, config = configs.written({"p1": {}}, api_url=api.url, token=TOKEN)

        async def main() -> None:
            acked: set[str] = set()
            sender = RecordSender(zmq_context, Layout.of(config).records_endpoint, acked.update)
            stop = asyncio.Event()
            pump = asyncio.create_task(sender.run(stop))
            uplink = await start_uplink(config_path, tmp_path / "uplink.log")
            try:
                sender.submit(status(0))
                await wait_until(lambda: "p1-0" in acked, within_s=20)
                await asyncio.sleep(0.5)  # the queue's first checkpoint, if any, is over
                before = footprint(config)
                for n in range(1, 31):  # three seconds of polling at 10 Hz
                    sender.submit(status(n, state="printing" if n < 15 else "paused"))
                    await asyncio.sleep(0.1)
                await wait_until(lambda: len(acked) == 31, within_s=20)
                assert footprint(config) == before  # not a byte, not a touch
            finally:
                stop.set()
                await pump
                sender.close()
                uplink.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(uplink.wait(), 15) == 0

        asyncio.run(main())
        delivered = statuses_at(api)
    assert sorted(r["id"] for r in delivered) == sorted(f"p1-{n}" for n in range(31))  # all of them
    assert all(r["seq"] is None for r in delivered)


def test_an_outage_spills_downsampled_and_a_sigkill_loses_none_of_it(
    tmp_path: Path, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    api = ApiThread(tmp_path / "api.db")  # port bound, not listening yet: connects are refused
    config_path, config = configs.written(
        {"p1": {}, "p2": {}},
        api_url=api.url,
        token=TOKEN,
        api={"timeout_s": 2},
        uplink={"offline_status_interval_s": 1.0},
    )
    log = tmp_path / "uplink.log"

    async def main() -> list[str]:
        acked: set[str] = set()
        sender = RecordSender(zmq_context, Layout.of(config).records_endpoint, acked.update)
        stop = asyncio.Event()
        pump = asyncio.create_task(sender.run(stop))
        uplink = await start_uplink(config_path, log)
        sent = 0
        for n in range(60):  # six seconds at 10 Hz for two printers; p2 pauses for a moment
            p2_state: PrinterState = "paused" if 30 <= n < 33 else "printing"
            sender.submit(status(n, "p1"))
            sender.submit(status(n, "p2", p2_state))
            sent += 2
            await asyncio.sleep(0.1)
        await wait_until(lambda: len(acked) == sent, within_s=30)  # all kept or judged
        kept = spilled_ids(config)
        uplink.send_signal(signal.SIGKILL)  # with the outage's statuses on disk only
        await uplink.wait()
        stop.set()
        await pump
        sender.close()
        with api:  # the API comes back; a new uplink delivers what the killed one kept
            uplink = await start_uplink(config_path, log)
            await wait_until(lambda: len(statuses_at(api)) >= len(kept), within_s=30)
            uplink.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(uplink.wait(), 15) == 0
            delivered = statuses_at(api)
        assert sorted(r["id"] for r in delivered) == sorted(kept)  # none lost, none extra
        for printer in ("p1", "p2"):
            mine = [r for r in delivered if r["printer_id"] == printer]
            times = [datetime.fromisoformat(r["ts"]) for r in mine]
            assert times == sorted(times)  # oldest first
        return kept

    kept = asyncio.run(main())
    p1 = [int(i.split("-")[1]) for i in kept if i.startswith("p1-")]
    p2 = [int(i.split("-")[1]) for i in kept if i.startswith("p2-")]
    # one per printer per second of the outage (the first arrives ~3 s in, when it counts as
    # late), never the ten a second that were sent
    assert 2 <= len(p1) <= 8, p1
    assert {30, 33} <= set(p2)  # p2's pause and resume are kept, whatever the interval
    assert len(p2) <= len(p1) + 3
