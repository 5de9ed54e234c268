"""The uplink's figures for the metrics: queue depth and age by lane from a real queue file,
deliveries by lane, drops by reason, upload requests by result."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.health import UplinkHealth, read_uplink, write_uplink
from gateway.layout import Layout
from gateway.messages import Status, utc_now
from services.uplink.figures import DeliveryCounts, uplink_health
from services.uplink.live import LiveStats
from services.uplink.queue import DurableQueue
from tests.test_uplink_queue import event, status


def test_figures_by_lane_from_a_queue_file(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "queue.db", 10**8)
    queue.accept([status(1), event(1), status(2)])
    counts = DeliveryCounts()
    batch = queue.claim(10, 10**6)
    assert batch is not None
    counts.delivered(queue.delivered(batch))
    before = time.time()
    queue.accept([event(2)])
    counts.request("retry")
    counts.request("delivered")
    counts.request("delivered")
    live = LiveStats(delivered=7, dropped_by_downsampling=2, dropped_no_room=1)
    figures = uplink_health(queue.stats(), live, counts)
    assert figures.queue_records == {"live": 0, "reliable": 1}
    assert set(figures.queue_oldest) == {"reliable"}  # an empty lane has no oldest
    assert before - 1 <= figures.queue_oldest["reliable"] <= time.time() + 1
    assert figures.queue_bytes > 0
    assert figures.delivered == {"live": 7 + 2, "reliable": 1}  # memory + queue
    assert figures.dropped == {"queue_cap": 0, "downsampled": 2, "no_room": 1}
    assert figures.upload_requests == {
        "retry": 1,
        "delivered": 2,
        "unauthorized": 0,
        "split": 0,
        "refused": 0,
    }
    queue.close()


def test_delivered_says_how_many_of_each_kind(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "queue.db", 10**8)
    queue.accept([status(1), event(1), event(2)])
    batch = queue.claim(10, 10**6)
    assert batch is not None
    assert queue.delivered(batch) == {"status": 1, "event": 2}
    stats = queue.stats()
    assert (stats.depth_by_kind, stats.oldest_by_kind, stats.oldest_age_s) == ({}, {}, None)
    queue.close()


def test_the_oldest_record_of_each_lane(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "queue.db", 10**8)
    queue.accept([event(1)])
    time.sleep(0.05)
    queue.accept([Status(id="s-late", printer_id="p1", ts=utc_now(), state="idle")])
    figures = uplink_health(queue.stats(), LiveStats(), DeliveryCounts())
    assert figures.queue_records == {"live": 1, "reliable": 1}
    assert figures.queue_oldest["reliable"] < figures.queue_oldest["live"]
    queue.close()


def test_figures_file_round_trip(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "data", tmp_path / "run")
    assert read_uplink(layout) is None  # not written yet
    figures = UplinkHealth(queue_records={"live": 2}, upload_requests={"delivered": 5})
    write_uplink(layout, figures)
    assert read_uplink(layout) == figures
