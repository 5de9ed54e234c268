"""A state-machine model of the durable queue (Hypothesis): whatever the interleaving of
accepts (with re-sent ids), claims, deliveries, releases and reopenings, every accepted
record is either queued or delivered exactly once, and each scope's seqs run 1..n with no
gap and no repeat."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.messages import Event, Record, Status, record_json_decoder, utc_now
from services.uplink.queue import Batch, DurableQueue


class QueueModel(RuleBasedStateMachine):
    """The queue against a plain Python model of what it must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="queue-model-"))
        self.queue = DurableQueue(self.dir / "queue.db", 10**9)
        self.accepted: dict[str, str] = {}  # id -> scope
        self.statuses: set[str] = set()  # ids of accepted statuses
        self.delivered: list[Record] = []
        self.claimed: Batch | None = None
        self.counter = 0

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        printer=st.sampled_from(["p1", "p2", None]),
        status=st.booleans(),
        count=st.integers(1, 4),
        resend=st.booleans(),
    )
    def accept(self, printer: str | None, status: bool, count: int, resend: bool) -> None:
        records: list[Record] = []
        for _ in range(count):
            self.counter += 1
            record_id = f"r{self.counter}"
            ts = utc_now()
            records.append(
                Status(id=record_id, printer_id=printer, ts=ts, state="idle")
                if status
                else Event(id=record_id, printer_id=printer, ts=ts, event="printer_online")
            )
        events = sorted(i for i in self.accepted if i not in self.statuses)
        if resend and events:
            # a sender re-sending an event already stored (statuses are deduped before the
            # queue, by the live lane: a re-sent status is not the queue's to catch)
            records.append(
                Event(id=events[0], printer_id=printer, ts=utc_now(), event="printer_online")
            )
        new = self.queue.accept_new(records)
        assert {r.id for r in new} == {r.id for r in records if r.id not in self.accepted}
        for record in new:
            self.accepted[record.id] = record.printer_id or ""
            if isinstance(record, Status):
                self.statuses.add(record.id)

    @precondition(lambda self: self.claimed is None)
    @rule(size=st.integers(1, 6))
    def claim(self, size: int) -> None:
        self.claimed = self.queue.claim(size, 10**6)

    @precondition(lambda self: self.claimed is not None)
    @rule()
    def deliver(self) -> None:
        assert self.claimed is not None
        self.delivered += [record_json_decoder.decode(body) for body in self.claimed.bodies]
        self.queue.delivered(self.claimed)
        self.claimed = None

    @precondition(lambda self: self.claimed is not None)
    @rule()
    def release(self) -> None:
        assert self.claimed is not None
        self.queue.release(self.claimed)
        self.claimed = None

    @rule()
    def reopen(self) -> None:
        """A killed uplink: the claim is left behind and released by the next start."""
        self.queue.close()
        self.queue = DurableQueue(self.dir / "queue.db", 10**9)
        self.queue.release_stale_claims()
        self.claimed = None

    @invariant()
    def every_record_once_and_seqs_without_gaps(self) -> None:
        queued = [record_json_decoder.decode(body) for body in self.queue.peek(10**6)]
        everything = queued + self.delivered
        ids = [r.id for r in everything]
        assert len(ids) == len(set(ids)), "a record is both queued and delivered, or twice"
        assert set(ids) == set(self.accepted)
        for scope in {"p1", "p2", ""}:
            reliable = [r for r in everything if (r.printer_id or "") == scope]
            seqs = sorted(r.seq or 0 for r in reliable if not isinstance(r, Status))
            assert seqs == list(range(1, len(seqs) + 1)), f"seqs of {scope!r}: {seqs}"
            assert all(r.seq is None for r in reliable if isinstance(r, Status))


QueueModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestQueueModel = QueueModel.TestCase
