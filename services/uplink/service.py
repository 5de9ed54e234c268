"""``printer-gateway run uplink``: receive records, deliver them in two lanes (architecture
§4.3): the reliable lane (events, command results) durable before acknowledgement, the live
lane (statuses) from memory while the API keeps up.

Two loops share one queue file through two SQLite connections, and the live lane in memory:

* the **receiver** (asyncio): takes a batch from the records channel, drains whatever else is
  already waiting (up to ``GROUP_RECORDS`` records). Statuses go to the live lane
  (``live.py``), acknowledged later, once delivered or kept. Reliable records are stored in
  one transaction (group commit), then acknowledged. On every turn it also spills what the
  live lane says is due (downsampled, into the queue) and sends the acknowledgements the
  live lane owes. A full disk means no acknowledgement (senders keep and re-send) and one log
  line per episode. Accepted records are published on the tap (``bus.TapPublisher``: a
  debugging view that may drop).
* the **deliverer** (a thread, because ``requests`` blocks): posts the live lane's waiting
  statuses when there are any (a failure hands them back to be spilled), else claims a
  batch from the queue, posts it, then deletes it / dead-letters it / waits and posts the
  *same* batch again (same Idempotency-Key). Waits between failures stay at or under 2 s
  for the first minute of an outage, so the API's return is seen within 2 s, then grow to
  30 s at most. The first failure of an outage and the recovery are logged; retries in
  between are not.

SIGTERM stops taking records (everything acknowledged is already committed), lets the
attempt in flight finish within ``api.timeout_s`` and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Sequence

import msgspec
import zmq
import zmq.asyncio

from gateway import runner
from gateway.bus import CommandInjector, InvalidRecord, Received, RecordReceiver, TapPublisher
from gateway.config import Config, Token
from gateway.files import write_atomically
from gateway.health import REPORT_AFTER_S, Problems, UplinkHealth, write_uplink
from gateway.http import AUTH_RETRY_S
from gateway.ids import legacy_pause_id
from gateway.layout import Layout
from gateway.loops import Backoff, LoopGuard, guarded_loop, guarded_thread_loop
from gateway.messages import Command, Record, Status, json_encoder, utc_text
from gateway.redaction import safe
from services.uplink.delivery import Deliverer, Disposition, PostResult
from services.uplink.figures import DeliveryCounts, uplink_health
from services.uplink.legacy import LegacyDeliverer, LegacyState, PauseHook
from services.uplink.live import LiveLane, LiveStatus
from services.uplink.notify import Notifier
from services.uplink.queue import Batch, DurableQueue, QueueFullError, QueueStats

logger = logging.getLogger(__name__)
GROUP_RECORDS = 5000
BATCH_RECORDS = 1000
QUICK_RETRY_S = 2.0  # the longest wait between attempts in an outage's first minute
QUICK_RETRY_FOR_S = 60.0
LIVE_STATS_EVERY_S = 1.0  # the live lane's counters for `status`, on tmpfs, at most this often
FIGURES_QUEUE_PACE = 50  # the queue's stats for the metrics: 1 part reading, 49 waiting
BATCH_BYTES = 2 * 1024 * 1024
MIN_BATCH_BYTES = 16 * 1024


class PauseThroughControl:
    """The legacy 418 hook: a pause command handed to control, one id per print. Never waits
    (a 418 on every message must not slow delivery) and logs each print's request once."""

    def __init__(self, endpoint: str) -> None:
        self._injector = CommandInjector(endpoint)
        self._logged: tuple[str, int, bool] | None = None  # printer, print, handed over

    def __call__(self, printer_id: str, print_no: int) -> None:
        command = Command(
            id=legacy_pause_id(printer_id, print_no), printer_id=printer_id, type="pause"
        )
        handed = self._injector.inject(command)
        if self._logged == (printer_id, print_no, handed):
            return
        self._logged = (printer_id, print_no, handed)
        if handed:
            logger.info("legacy API asked to pause %s (HTTP 418): handed to control", printer_id)
        else:
            logger.warning(
                "legacy API asked to pause %s (HTTP 418) but control is not reachable; "
                "each next 418 asks again",
                printer_id,
            )

    def close(self) -> None:
        """Close the socket to control."""
        self._injector.close()


class DeliveryThread(threading.Thread):
    """Drains the queue into the API until stopped.

    Batches to post are kept on a stack: a claimed batch, or the halves of a batch the API
    found too large (413) or invalid (400/422), the first half on top, so order is kept and a
    bad record ends up alone. A retry posts the same batch (same Idempotency-Key) again. The
    API refusing the token (401/403) is a condition, not a verdict on the records: they stay,
    the condition is reported, and the same batch is tried again at least every 15 s.
    """

    def __init__(
        self,
        config: Config,
        token: Token,
        work: threading.Event,
        on_pause_request: PauseHook | None = None,
        problems: Problems | None = None,
        live: LiveLane | None = None,
        counts: DeliveryCounts | None = None,
    ) -> None:
        super().__init__(name="uplink-delivery", daemon=True)
        self.live = live or LiveLane(config.uplink.offline_status_interval_s, work)
        self.counts = counts or DeliveryCounts()
        layout = Layout.of(config)
        self.queue = DurableQueue(layout.queue_db, config.uplink.max_queue_mb * 1024 * 1024)
        self.problems = problems or Problems(None, "uplink")
        self.poster: Deliverer | LegacyDeliverer
        if config.api.flavor == "legacy":
            state = msgspec.json.decode(self.queue.note("legacy_state") or "{}", type=LegacyState)
            hook = on_pause_request or PauseThroughControl(layout.control_endpoint)
            self.poster = LegacyDeliverer(
                config.api.url, token.secret, config.api.timeout_s, state, hook
            )
        else:
            self.poster = Deliverer(
                config.api.url, token.secret, config.gateway.id, config.api.timeout_s
            )
        self.work = work
        self.stopping = threading.Event()
        self.backoff = self.new_backoff()
        self.guard = LoopGuard("delivery", self.problems)
        self.outage_since: float | None = None
        self._failure_kind: int | str | None = None
        self.batch_bytes = BATCH_BYTES
        self._todo: list[Batch] = []  # the top is posted next
        self._legacy_state = self.queue.note("legacy_state")
        self._queue_turn = False

    @staticmethod
    def new_backoff() -> Backoff:
        """Between failed posts: full jitter from 0.5 s, doubling, at most 30 s (and at most
        QUICK_RETRY_S in an outage's first minute, see ``_failing``)."""
        return Backoff(base_s=0.5, cap_s=30.0)

    def run(self) -> None:
        """Claim, post, settle; sleep when there is nothing to do or the API is down."""
        try:
            guarded_thread_loop(self.guard, self._step, self.stopping)
        finally:
            for batch in self._todo:
                self.queue.release(batch)
            self.poster.close()
            self.queue.close()

    def _step(self) -> float | None:
        """One attempt on the batch on top of the stack; the pause before the next one
        (None: go on at once). The batch leaves the stack only once settled, so an
        unexpected error leaves it there to be tried again."""
        if not self._todo:
            # Take turns: a live post, then a queue batch if there is one, so steady status
            # traffic never starves the reliable lane (or the spilled backlog).
            queue_first, self._queue_turn = self._queue_turn, not self._queue_turn
            batch = self.queue.claim(BATCH_RECORDS, self.batch_bytes) if queue_first else None
            if batch is None:
                live = self.live.take(BATCH_RECORDS)
                if live:
                    return self._attempt_live(live)
                if not queue_first:  # the queue was not asked yet this step
                    batch = self.queue.claim(BATCH_RECORDS, self.batch_bytes)
            if batch is None:
                self.work.clear()
                if not self.live.waiting():  # a status that came meanwhile is not missed
                    self.work.wait(1.0)
                return None
            self._todo.append(batch)
        return self._attempt(self._todo[-1])

    def _attempt_live(self, live: list[LiveStatus]) -> float | None:
        """Post the live lane's statuses once. Delivered: acknowledged. Anything else: handed
        back, to be kept on disk downsampled and posted from there (a 400 or 413 included:
        the queue's path splits and dead-letters)."""
        bodies = tuple(json_encoder.encode(entry.status) for entry in live)
        try:
            answer = self.poster.post(Batch(uuid.uuid4().hex, (), bodies))
        except BaseException:  # whatever happened, they must not stay taken forever
            self.live.failed(live)
            raise
        self.counts.request(answer.disposition.value)
        if answer.disposition is Disposition.DELIVERED:
            self.live.delivered(live, utc_text())
            self._recovered()
            self._keep_legacy_state()
            return None
        # A 400/413 refused something in this batch: kept whole, for the queue's path to
        # split and dead-letter; any other failure is an outage: downsampled. The legacy
        # API shows only the current state: nothing kept, never replayed after newer ones.
        refused = answer.disposition in (Disposition.SPLIT, Disposition.REFUSED)
        legacy = isinstance(self.poster, LegacyDeliverer)
        self.live.failed(live, keep_all=refused and not legacy, keep_none=legacy)
        self._keep_legacy_state()
        self.queue.note_error(answer.reason)
        if answer.disposition is Disposition.UNAUTHORIZED:
            return self._unauthorized(answer.reason)
        if answer.disposition is Disposition.RETRY:
            return self._failing(answer)
        return None

    def _keep_legacy_state(self) -> None:
        """Which printers are mid-print survives a restart (legacy flavor): written when it
        changes, not per post."""
        if isinstance(self.poster, LegacyDeliverer):
            state = msgspec.json.encode(self.poster.state).decode()
            if state != self._legacy_state:
                self.queue.set_note("legacy_state", state)
                self._legacy_state = state

    def _attempt(self, batch: Batch) -> float | None:
        """Post once and settle what the answer says; the delay before the next attempt."""
        answer = self.poster.post(batch)
        self.counts.request(answer.disposition.value)
        self._keep_legacy_state()
        if answer.unreadable:
            batch = self._todo[-1] = self.queue.dead_letter_some(
                batch, answer.unreadable, "the queued record cannot be read"
            )
        if answer.disposition is Disposition.DELIVERED:
            self.counts.delivered(self.queue.delivered(batch))
            self._todo.pop()
            self._recovered()
            return None
        self.queue.note_error(answer.reason)
        if answer.disposition is Disposition.UNAUTHORIZED:
            return self._unauthorized(answer.reason)
        if answer.disposition is Disposition.SPLIT and len(batch.positions) > 1:
            if answer.status == 413:
                self._shrink(batch)
            first, second = self.queue.split(batch)
            self._todo[-1:] = [second, first]
            return None
        if answer.disposition in (Disposition.SPLIT, Disposition.REFUSED):
            logger.error(
                "API refused %d record(s) for good (%s): dead-lettered",
                len(batch.bodies),
                answer.reason,
            )
            self.queue.dead_letter(batch, answer.reason)
            self._todo.pop()
            return None
        return self._failing(answer)  # the same batch again

    def _recovered(self) -> None:
        self.backoff.reset()
        self.problems.clear("api auth")
        self.problems.clear("delivery")
        if self.outage_since is not None:
            logger.info("delivery recovered after %.0f s", time.monotonic() - self.outage_since)
            self.outage_since = None
            self._failure_kind = None

    def _failing(self, answer: PostResult) -> float:
        """A retry: logged when an outage starts and when the kind of failure changes (an
        HTTP status, or the error), reported by `status` as soon as the outage will have
        lasted a minute by the next attempt (a Retry-After of an hour is said at once)."""
        now = time.monotonic()
        kind = answer.status if answer.status is not None else answer.reason
        if self.outage_since is None:
            self.outage_since = now
            logger.warning("delivery failing (%s): retrying with backoff", answer.reason)
        elif kind != self._failure_kind:
            logger.warning("delivery still failing, now: %s", answer.reason)
        self._failure_kind = kind
        self.problems.clear("api auth")  # this answer was not a refusal of the token
        delay = answer.retry_after_s
        if delay is None:
            delay = self.backoff.next_delay()
            if now - self.outage_since < QUICK_RETRY_FOR_S:
                delay = min(delay, QUICK_RETRY_S)
        if now + delay - self.outage_since >= REPORT_AFTER_S:
            waits = f", next try in {delay:.0f} s" if delay >= 1 else ""
            self.problems.report(
                "delivery", f"the API is not taking records: {answer.reason}{waits}"
            )
        return delay

    def _unauthorized(self, reason: str) -> float:
        if self._failure_kind != "unauthorized":
            logger.error("the API refuses the token (%s): records are kept, retrying", reason)
            self._failure_kind = "unauthorized"
            self.outage_since = self.outage_since or time.monotonic()
        self.problems.report("api auth", f"the API refuses the token ({reason})")
        return min(self.backoff.next_delay(), AUTH_RETRY_S)

    def _shrink(self, batch: Batch) -> None:
        """A 413: later claims stay under half of what was refused."""
        size = sum(len(body) for body in batch.bodies)
        smaller = max(MIN_BATCH_BYTES, size // 2)
        if smaller < self.batch_bytes:
            logger.warning("API said 413 to %d bytes: batches now up to %d", size, smaller)
            self.batch_bytes = smaller


class Uplink:
    """The receiving side, the live lane's spills and acks, the tap and the delivery thread."""

    def __init__(
        self,
        config: Config,
        token: Token,
        ctx: zmq.asyncio.Context,
        problems: Problems | None = None,
    ) -> None:
        self.layout = layout = Layout.of(config)
        self.problems = problems or Problems(None, "uplink")
        self.queue = DurableQueue(layout.queue_db, config.uplink.max_queue_mb * 1024 * 1024)
        released = self.queue.release_stale_claims()
        if released:
            logger.info("requeued %d records claimed by a previous run", released)
        self.receiver = RecordReceiver(ctx, layout.records_endpoint)
        try:
            # The tap's socket is on a shadow of the context, which the runner's clean-up
            # does not see: closed here if what follows fails.
            self.tap = TapPublisher(ctx, layout.tap_endpoint)
            self.work = threading.Event()
            self.live = LiveLane(config.uplink.offline_status_interval_s, self.work)
            self.counts = DeliveryCounts()
            self.delivery = DeliveryThread(
                config, token, self.work, problems=self.problems, live=self.live, counts=self.counts
            )
            self.notifier = Notifier(config, layout, self.problems)
        except BaseException:
            self.receiver.close()
            if hasattr(self, "tap"):
                self.tap.close()
            self.queue.close()
            raise
        self._full_since: float | None = None
        self._live_stats_at = -1e9
        self._live_stats_written: bytes | None = None
        self._live_stats_failed = False
        self._figures_at = -1e9
        self._figures_written: UplinkHealth | None = None
        self._figures_failed = False
        self._queue_stats: QueueStats | None = None
        self._queue_stats_due = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and store until stop; then stop delivery and close."""
        self.delivery.start()
        self.notifier.start()
        try:
            await guarded_loop(LoopGuard("receiving", self.problems), self._receive_once, stop)
        finally:
            self.delivery.stopping.set()
            await asyncio.to_thread(self.notifier.stop)  # control shares this loop: no blocking
            self.work.set()
            await asyncio.to_thread(self.delivery.join, 15)
            await self._settle_live()  # what delivery settled while stopping
            self.receiver.close(linger_ms=500)
            self.tap.close()
            self.queue.close()

    async def _receive_once(self) -> None:
        got = await self.receiver.receive(0.2)
        if got is not None:
            await self._store_group([got])
        await self._settle_live()

    async def _store_group(self, group: list[Received]) -> None:
        count = len(group[0].ids)
        while count < GROUP_RECORDS and (more := await self.receiver.receive(0)) is not None:
            group.append(more)
            count += len(more.ids)
        for received in group:  # statuses wait in memory, acknowledged once settled
            statuses = [r for r in received.records if isinstance(r, Status)]
            if statuses:
                self.live.add(received.peer, statuses)
        reliable = [r for received in group for r in received.records if not isinstance(r, Status)]
        invalid = [item for received in group for item in received.invalid]
        if reliable or invalid:
            new = await self._store(reliable, invalid)
            if new is None:
                return  # not durable: no acknowledgement, the senders send them again
            self.work.set()
            self.notifier.offer(new)
        for received in group:
            settled = [r.id for r in received.records if not isinstance(r, Status)]
            settled += [item.record_id for item in received.invalid]
            if settled:
                await self.receiver.acknowledge(received.peer, settled)
        self.tap.publish(record for received in group for record in received.records)

    async def _store(
        self, records: Sequence[Record], invalid: Sequence[InvalidRecord]
    ) -> list[Record] | None:
        """Make records durable (one commit); None when the disk refuses (logged once an
        episode, reported)."""
        try:
            new = await asyncio.to_thread(
                self.queue.accept_new, records, invalid, self.notifier.wanted
            )
        except QueueFullError as err:
            if self._full_since is None:
                self._full_since = time.monotonic()
                logger.error("queue cannot grow (%s): not acknowledging until space returns", err)
            self.problems.report("queue full", f"the queue cannot grow: {err}")
            await asyncio.sleep(1.0)
            return None
        if self._full_since is not None:
            logger.info("queue writable again after %.0f s", time.monotonic() - self._full_since)
            self._full_since = None
            self.problems.clear("queue full")
        return new

    async def _settle_live(self) -> None:
        """Spill what the live lane says is due, send the acknowledgements it owes, and
        leave its counters for ``status`` (runtime_dir: tmpfs)."""
        due = self.live.due_to_spill()
        if due:
            choice = self.live.spill_worthy(due)
            try:
                stored = await self._store(choice.kept, []) if choice.kept else []
            except BaseException:
                self.live.put_back(due)  # judged again next time, nothing lost
                raise
            if stored is None:  # the disk is full: they wait again, unacknowledged
                self.live.put_back(due)
            else:
                self.live.spilled(due, choice)
                if choice.kept:
                    self.work.set()
        for peer, ids in self.live.acks().items():
            await self.receiver.acknowledge(peer, ids)
        self._write_live_stats()
        await self._write_figures()

    async def _write_figures(self) -> None:
        """The figures the metrics service reads (runtime_dir: tmpfs), at most once a
        second and only when they changed. The queue's stats scan the queue (its bytes are
        summed over every row: about 90 ms for 60 MB of spilled statuses on a PC), so they
        are read again only after FIGURES_QUEUE_PACE times as long as the last read took
        (at most 2 % of a core during a long outage), off the loop as its other queries."""
        now = time.monotonic()
        if now - self._figures_at < LIVE_STATS_EVERY_S:
            return
        self._figures_at = now
        if self._queue_stats is None or now >= self._queue_stats_due:
            self._queue_stats = await asyncio.to_thread(self.queue.stats)
            took = time.monotonic() - now
            self._queue_stats_due = now + FIGURES_QUEUE_PACE * took
        figures = uplink_health(self._queue_stats, self.live.stats, self.counts)
        if figures == self._figures_written:
            return
        try:
            write_uplink(self.layout, figures)
        except OSError as err:  # tmpfs full or gone: the metrics show less, nothing else
            if not self._figures_failed:
                logger.warning("cannot write %s: %s", self.layout.uplink_health, err)
            self._figures_failed = True
            return
        self._figures_written, self._figures_failed = figures, False

    def _write_live_stats(self) -> None:
        now = time.monotonic()
        if now - self._live_stats_at < LIVE_STATS_EVERY_S:
            return
        self._live_stats_at = now
        data = msgspec.json.encode(self.live.snapshot())
        if data != self._live_stats_written:
            try:
                write_atomically(self.layout.live_lane, data)
            except OSError as err:  # tmpfs full or gone: `status` shows less, nothing else
                if not self._live_stats_failed:
                    logger.warning("cannot write %s: %s", self.layout.live_lane, err)
                self._live_stats_failed = True
                return
            self._live_stats_written, self._live_stats_failed = data, False


def service(config: Config, token: Token) -> runner.Service:
    """The uplink, to be run by ``runner.run`` until SIGTERM or SIGINT."""

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        uplink = Uplink(config, token, ctx, problems)
        logger.info("uplink started: queue %s, API %s", uplink.queue.path, safe(config.api.url))
        await uplink.run(stop)

    return runner.Service("uplink", body)
