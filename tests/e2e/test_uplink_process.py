"""The uplink as a real process: outage then recovery, SIGKILL while records flow, SIGTERM."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from gateway.bus import RecordSender
from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import Event, Record, Status, utc_now
from services.uplink.queue import read_stats
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.http import TOKEN, ApiThread
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


async def start_uplink(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await Cli(config).start_async(
            "run", "uplink", stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )


def queue_depth(config: Config) -> int:
    """Records still queued on disk (reliable ones, and statuses the live lane spilled)."""
    stats = read_stats(Layout.of(config).queue_db)
    return -1 if stats is None else sum(stats.depth_by_kind.values())


def make_records(n: int) -> list[Record]:
    records: list[Record] = []
    for i in range(n):
        printer = "p1" if i % 2 else "p2"
        if i % 10 == 0:
            records.append(
                Event(id=f"e{i}", printer_id=printer, ts=utc_now(), event="print_started")
            )
        else:
            records.append(Status(id=f"s{i}", printer_id=printer, ts=utc_now(), state="printing"))
    return records


def test_outage_and_sigkill_while_records_flow_lose_nothing(
    tmp_path: Path, configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    log = tmp_path / "uplink.log"
    records = make_records(600)
    rng = random.Random(7)

    api = ApiThread(tmp_path / "api.db")  # port bound, not listening yet: connects are refused
    config_path, config = configs.written(
        {"p1": {}, "p2": {}}, api_url=api.url, token=TOKEN, api={"timeout_s": 2}
    )

    async def main() -> set[str]:
        acked: set[str] = set()
        sender = RecordSender(
            zmq_context,
            Layout.of(config).records_endpoint,
            acked.update,
            resend_after_s=0.5,
        )
        stop = asyncio.Event()
        pump = asyncio.create_task(sender.run(stop))
        uplink = await start_uplink(config_path, log)
        kills = sorted(rng.sample(range(50, 550), 3))
        for index, record in enumerate(records):
            sender.submit(record)
            if index in kills:
                # kill a running uplink, mid-stream: after it has acknowledged something new
                before = len(acked)
                await wait_until(lambda before=before: len(acked) > before, within_s=20)  # type: ignore[misc]
                await asyncio.sleep(rng.uniform(0.0, 0.2))
                uplink.send_signal(signal.SIGKILL)
                await uplink.wait()
                uplink = await start_uplink(config_path, log)
            if index % 5 == 0:
                await asyncio.sleep(0.01)
        await wait_until(lambda: sender.pending == 0, within_s=60)
        stop.set()
        await pump
        sender.close()
        events = {r.id for r in records if isinstance(r, Event)}

        def stored() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = api.get(
                "/v1/records", gateway_id="gw", limit=10_000
            ).json()["records"]
            return got

        with api:  # the API comes back
            await wait_until(
                lambda: {r["id"] for r in stored() if r["kind"] == "event"} == events,
                within_s=60,
            )
            await wait_until(lambda: queue_depth(config) == 0, within_s=30)
            delivered = stored()
        uplink.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(uplink.wait(), 10) == 0
        for printer in ("p1", "p2"):
            reliable = [
                r for r in delivered if r["printer_id"] == printer and r["kind"] != "status"
            ]
            seqs = sorted(r["seq"] for r in reliable)
            assert seqs == list(range(1, len(seqs) + 1)), f"gap or duplicate seq for {printer}"
            # the outage's statuses arrive downsampled: the first, and one per 10 s (a
            # restarted uplink starts its count again), never the hundreds that were sent
            statuses = [
                r for r in delivered if r["printer_id"] == printer and r["kind"] == "status"
            ]
            assert 1 <= len(statuses) <= 10, len(statuses)
            assert all(r["seq"] is None for r in statuses)
        assert sorted(r["id"] for r in delivered if r["kind"] == "event") == sorted(events)
        assert {r["id"] for r in delivered} <= {r.id for r in records}
        return acked

    acked = asyncio.run(main())
    assert acked == {r.id for r in records}
    assert "uplink stopped" in log.read_text()
