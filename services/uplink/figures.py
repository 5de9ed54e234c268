"""The uplink's figures for the metrics service: queue depth and age by lane, deliveries by
lane, drops by reason, upload requests by result (``gateway.health.UplinkHealth``).

The delivery thread counts (``DeliveryCounts``, under a lock: the receiving loop reads
them); the receiving loop combines those with the queue's stats and the live lane's
counters (``uplink_health``) and leaves them in runtime_dir at most once a second, only
when they changed. Lanes follow architecture §4.3: ``live`` is statuses (from memory, or
spilled to disk while the API was not keeping up), ``reliable`` is everything else.
"""

from __future__ import annotations

import threading

from gateway.health import UplinkHealth
from services.uplink.delivery import Disposition
from services.uplink.live import LiveStats
from services.uplink.queue import QueueStats


def lane_of(kind: str) -> str:
    """A record kind's lane."""
    return "live" if kind == "status" else "reliable"


class DeliveryCounts:
    """Records delivered from the queue by lane, and upload requests by result, since the
    uplink started (the live lane counts its own deliveries from memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivered: dict[str, int] = {}
        # Every result from the start, at 0: an alert on a rate of failures works at once.
        self._requests: dict[str, int] = {d.value: 0 for d in Disposition}

    def request(self, result: str) -> None:
        """One POST (or legacy message batch) ended with `result` (a Disposition value)."""
        with self._lock:
            self._requests[result] = self._requests.get(result, 0) + 1

    def delivered(self, by_kind: dict[str, int]) -> None:
        """Queued records the API stored, by kind."""
        with self._lock:
            for kind, count in by_kind.items():
                lane = lane_of(kind)
                self._delivered[lane] = self._delivered.get(lane, 0) + count

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """(delivered by lane, requests by result), copies."""
        with self._lock:
            return dict(self._delivered), dict(self._requests)


def uplink_health(queue: QueueStats, live: LiveStats, counts: DeliveryCounts) -> UplinkHealth:
    """What the metrics service reads (pure but for the counters' lock)."""
    records: dict[str, int] = {"live": 0, "reliable": 0}
    for kind, depth in queue.depth_by_kind.items():
        records[lane_of(kind)] += depth
    oldest: dict[str, float] = {}
    for kind, at in queue.oldest_by_kind.items():
        lane = lane_of(kind)
        oldest[lane] = min(at, oldest.get(lane, at))
    delivered, requests = counts.snapshot()
    delivered["live"] = delivered.get("live", 0) + live.delivered
    delivered.setdefault("reliable", 0)
    return UplinkHealth(
        queue_records=records,
        queue_bytes=queue.bytes,
        queue_oldest=oldest,
        delivered=delivered,
        dropped={
            "queue_cap": queue.dropped_status,
            "downsampled": live.dropped_by_downsampling,
            "no_room": live.dropped_no_room,
        },
        upload_requests=requests,
    )
