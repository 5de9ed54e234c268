"""``printer-gateway run uplink``: receive records, make them durable, acknowledge, deliver.

Two loops share one queue file through two SQLite connections:

* the **receiver** (asyncio): takes a batch from the records channel, drains whatever else is
  already waiting (up to ``GROUP_RECORDS`` records), stores all of it in one transaction
  (group commit), then acknowledges every sender. A full disk means no acknowledgement
  (senders keep and re-send) and one log line per episode. Accepted records are published on
  the tap (``ipc://<runtime_dir>/tap.ipc``, PUB: a debugging view that may drop).
* the **deliverer** (a thread, because ``requests`` blocks): claim a batch, post it, then
  delete it / dead-letter it / wait and post the *same* batch again (same Idempotency-Key).
  The first failure of an outage and the recovery are logged; retries in between are not.

SIGTERM stops taking records (everything acknowledged is already committed), lets the
attempt in flight finish within ``api.timeout_s`` and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from gateway import runner
from gateway.bus import (
    RecordReceiver,
    control_endpoint,
    inject_command,
    prepare_runtime_dir,
    records_endpoint,
)
from gateway.config import Config, Token
from gateway.messages import Command, Record, json_encoder
from services.uplink.delivery import Backoff, Deliverer, Verdict
from services.uplink.legacy import LegacyDeliverer, LegacyState, PauseHook
from services.uplink.notify import Notifier
from services.uplink.queue import Batch, DurableQueue, QueueFullError

logger = logging.getLogger(__name__)
GROUP_RECORDS = 5000
BATCH_RECORDS = 1000
BATCH_BYTES = 2 * 1024 * 1024


def queue_path(config: Config) -> Path:
    """Where the durable queue lives."""
    return Path(config.gateway.data_dir) / "uplink" / "queue.db"


def tap_endpoint(runtime_dir: str) -> str:
    """Where accepted records are published for ``printer-gateway tap``."""
    return f"ipc://{Path(runtime_dir) / 'tap.ipc'}"


def pause_through_control(runtime_dir: str) -> PauseHook:
    """The legacy 418 hook: a pause command handed to control, one id per print."""
    endpoint = control_endpoint(runtime_dir)

    def hook(printer_id: str, print_no: int) -> None:
        command = Command(
            id=f"legacy-418:{printer_id}:{print_no}", printer_id=printer_id, type="pause"
        )
        if inject_command(endpoint, command):
            logger.info("legacy API asked to pause %s (HTTP 418): handed to control", printer_id)
        else:
            logger.warning(
                "legacy API asked to pause %s (HTTP 418) but control is not reachable; "
                "the next 418 asks again",
                printer_id,
            )

    return hook


class DeliveryThread(threading.Thread):
    """Drains the queue into the API until stopped."""

    def __init__(
        self,
        config: Config,
        token: Token,
        work: threading.Event,
        on_pause_request: PauseHook | None = None,
    ) -> None:
        super().__init__(name="uplink-delivery", daemon=True)
        self.queue = DurableQueue(queue_path(config), config.uplink.max_queue_mb * 1024 * 1024)
        self.poster: Deliverer | LegacyDeliverer
        if config.api.flavor == "legacy":
            state = msgspec.json.decode(self.queue.note("legacy_state") or "{}", type=LegacyState)
            hook = on_pause_request or pause_through_control(config.gateway.runtime_dir)
            self.poster = LegacyDeliverer(
                config.api.url, token.secret, config.api.timeout_s, state, hook
            )
        else:
            self.poster = Deliverer(
                config.api.url, token.secret, config.gateway.id, config.api.timeout_s
            )
        self.work = work
        self.stopping = threading.Event()
        self.backoff = Backoff()
        self.outage_since: float | None = None

    def run(self) -> None:
        """Claim, post, settle; sleep when there is nothing to do or the API is down."""
        batch: Batch | None = None
        try:
            while not self.stopping.is_set():
                batch = batch or self.queue.claim(BATCH_RECORDS, BATCH_BYTES)
                if batch is None:
                    self.work.wait(1.0)
                    self.work.clear()
                    continue
                delay = self._attempt(batch)
                if delay is None:
                    batch = None
                else:
                    self.stopping.wait(delay)
        finally:
            if batch is not None:
                self.queue.release(batch)
            self.poster.close()
            self.queue.close()

    def _attempt(self, batch: Batch) -> float | None:
        """Post once; None when the batch is settled, else the delay before trying it again."""
        answer = self.poster.post(batch)
        if isinstance(self.poster, LegacyDeliverer):  # which printers are mid-print survives
            self.queue.set_note("legacy_state", msgspec.json.encode(self.poster.state).decode())
        if answer.verdict is Verdict.DELIVERED:
            self.queue.delivered(batch)
            self.backoff.reset()
            if self.outage_since is not None:
                logger.info("delivery recovered after %.0f s", time.monotonic() - self.outage_since)
                self.outage_since = None
            return None
        self.queue.note_error(answer.reason)
        if answer.verdict is Verdict.REFUSED:
            logger.error(
                "API refused a batch of %d records for good (%s): dead-lettered",
                len(batch.bodies),
                answer.reason,
            )
            self.queue.dead_letter(batch, answer.reason)
            return None
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            logger.warning("delivery failing (%s): retrying with backoff", answer.reason)
        return (
            answer.retry_after_s if answer.retry_after_s is not None else self.backoff.next_delay()
        )


class Uplink:
    """The receiving side, the tap and the delivery thread."""

    def __init__(self, config: Config, token: Token, ctx: zmq.asyncio.Context) -> None:
        prepare_runtime_dir(config.gateway.runtime_dir)
        self.queue = DurableQueue(queue_path(config), config.uplink.max_queue_mb * 1024 * 1024)
        released = self.queue.release_stale_claims()
        if released:
            logger.info("requeued %d records claimed by a previous run", released)
        self.receiver = RecordReceiver(ctx, records_endpoint(config.gateway.runtime_dir))
        # A plain (blocking-API) socket on the same context: a NOBLOCK send on PUB never
        # waits, and skips the per-message future of the asyncio wrapper.
        self.tap: zmq.Socket[bytes] = zmq.Context.shadow(ctx.underlying).socket(zmq.PUB)
        self.tap.setsockopt(zmq.LINGER, 0)
        self.tap.setsockopt(zmq.SNDHWM, 10_000)
        self.tap.bind(tap_endpoint(config.gateway.runtime_dir))
        self.work = threading.Event()
        self.delivery = DeliveryThread(config, token, self.work)
        self.notifier = Notifier(config)
        self._full_since: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and store until stop; then stop delivery and close."""
        self.delivery.start()
        self.notifier.start()
        try:
            while not stop.is_set():
                got = await self.receiver.receive(0.2)
                if got is not None:
                    await self._store_group([got])
        finally:
            self.delivery.stopping.set()
            self.notifier.stop()
            self.work.set()
            await asyncio.to_thread(self.delivery.join, 15)
            self.receiver.close()
            self.tap.close(linger=0)
            self.queue.close()

    async def _store_group(self, group: list[tuple[bytes, tuple[Record, ...]]]) -> None:
        count = len(group[0][1])
        while count < GROUP_RECORDS and (more := await self.receiver.receive(0)) is not None:
            group.append(more)
            count += len(more[1])
        records = [record for _, batch in group for record in batch]
        try:
            new = await asyncio.to_thread(self.queue.accept_new, records)
        except QueueFullError as err:
            if self._full_since is None:
                self._full_since = time.monotonic()
                logger.error("queue cannot grow (%s): not acknowledging until space returns", err)
            await asyncio.sleep(1.0)
            return
        if self._full_since is not None:
            logger.info("queue writable again after %.0f s", time.monotonic() - self._full_since)
            self._full_since = None
        for peer, batch in group:
            await self.receiver.acknowledge(peer, [record.id for record in batch])
        self.work.set()
        self.notifier.offer(new)
        for record in records:
            with contextlib.suppress(zmq.Again):
                self.tap.send(json_encoder.encode(record), flags=zmq.NOBLOCK)


def run(config: Config, token: Token) -> int:
    """Run the uplink until SIGTERM or SIGINT; 0 on a clean stop."""

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event) -> None:
        uplink = Uplink(config, token, ctx)
        logger.info("uplink started: queue %s, API %s", queue_path(config), config.api.url)
        await uplink.run(stop)

    return runner.run("uplink", config.gateway.runtime_dir, body)
