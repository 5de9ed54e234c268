"""ZeroMQ between the gateway's processes: the one module that makes sockets and encodes.

Three channels, all over ``ipc://`` files in ``runtime_dir`` (``layout.Layout`` names them;
the directory is made 0700 when a bind creates it):

* **records** (poller/control -> uplink): a DEALER per sender, one ROUTER in the uplink.
  A sender keeps every record until the uplink acknowledges its id, which the uplink does
  only after the record is durable; unacknowledged records are re-sent after
  ``resend_after_s`` (the uplink dedupes by id). Nothing is fire-and-forget: ZeroMQ alone
  loses what sits in a killed peer's queues.
* **commands** (control -> poller): request/reply with a command id; a retry carries the
  same id and the poller answers it from its memory instead of acting twice.
* **tap** (uplink -> ``printer-gateway tap``): every accepted record as JSON, PUB/SUB, a
  debugging view that drops rather than waits.

Messages are msgpack-encoded tagged unions (``op``); encoders and decoders are built once.
Every socket has LINGER=0 and every receive a timeout. Records travel each encoded on its
own (``msgspec.Raw``): a record that cannot be encoded is refused by its sender alone, and
one the uplink cannot decode is set aside alone (dead-lettered, acknowledged), never the
batch around it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from gateway.commands import Action, Answer
from gateway.files import private_dir
from gateway.health import Problems
from gateway.loops import LoopGuard, guarded_loop
from gateway.messages import (
    DECODE_ERRORS,
    Command,
    Record,
    Status,
    json_encoder,
    msgpack_encoder,
    record_msgpack_decoder,
)
from gateway.redaction import safe

logger = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
IDLE_WAIT_S = 1.0  # an idle loop's longest sleep on an event (a stop sets the event too)
IDLE_POLL_S = 0.5  # an idle loop's longest wait on a socket: what a stop may have to wait


class _Message(msgspec.Struct, frozen=True, tag_field="op"):
    """Base of the bus messages."""


class Submit(_Message, frozen=True, tag="submit"):
    """Records for the uplink to make durable, each one msgpack-encoded on its own (the
    bytes are those of a tuple of records, so either side may be the older version)."""

    records: tuple[msgspec.Raw, ...]


class Ack(_Message, frozen=True, tag="ack"):
    """These record ids are durable."""

    ids: tuple[str, ...]


class Execute(_Message, frozen=True, tag="execute"):
    """Run a command on the poller's printer (idempotent by command_id). ``ttl_s``: seconds
    left, when sent, before the command must no longer start (relative: no shared clock)."""

    command_id: str
    action: Action
    ttl_s: float | None = None


class Executed(_Message, frozen=True, tag="executed"):
    """The one answer to a command id."""

    answer: Answer


class Inject(_Message, frozen=True, tag="inject"):
    """A command that did not come from the command API (the legacy flavor's HTTP 418)."""

    command: Command


Message = Submit | Ack | Execute | Executed | Inject
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    """msgpack bytes of a bus message."""
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """A bus message from bytes; msgspec.DecodeError/ValidationError on garbage."""
    message: Message = _decoder.decode(data)
    return message


async def wake_on(stop: asyncio.Event, wake: asyncio.Event) -> None:
    """Set `wake` once `stop` is set (a loop sleeping on `wake` notices the stop at once)."""
    await stop.wait()
    wake.set()


class CommandInjector:
    """Hands commands to control from synchronous code, never waiting: one socket, kept
    open, connects in the background whenever control is up. Use it from one thread."""

    def __init__(self, endpoint: str) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._socket = ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 500)  # a command handed over is sent at close
        self._socket.setsockopt(zmq.IMMEDIATE, 1)  # nothing queued for an absent control
        self._socket.connect(endpoint)

    def inject(self, command: Command) -> bool:
        """Hand a command over; False when control is not connected right now (the caller's
        source asks again, e.g. the next HTTP 418)."""
        try:
            self._socket.send(encode(Inject(command)), flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()


class InjectReceiver:
    """Control's side of injected commands."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        self._socket = _socket(ctx, zmq.ROUTER)
        _bind(self._socket, endpoint)

    async def receive(self, timeout_s: float) -> Command | None:
        """The next injected command, or None after timeout_s (or on garbage, logged)."""
        if not await self._socket.poll(int(timeout_s * 1000)):
            return None
        frames = await self._socket.recv_multipart()
        try:
            message = decode(frames[-1])
        except DECODE_ERRORS as err:
            logger.warning("ignoring undecodable injected command: %s", err)
            return None
        return message.command if isinstance(message, Inject) else None

    def close(self) -> None:
        """Close the socket."""
        self._socket.close(linger=0)


def _socket(ctx: zmq.asyncio.Context, kind: int) -> zmq.asyncio.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    return sock


def _bind(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Bind, creating an ipc endpoint's directory (owner-only when created) first."""
    if endpoint.startswith("ipc://"):
        private_dir(Path(endpoint.removeprefix("ipc://")).parent)
    sock.bind(endpoint)


class RecordSender:
    """Keeps records until the uplink acknowledges them; bounded, re-sends what is overdue.

    At ``max_pending`` the oldest *status* record is dropped (counted in ``dropped_status``);
    events and command results are never dropped here (events are also in the journal).
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        on_ack: Callable[[set[str]], None],
        *,
        batch_size: int = 500,
        window: int = 5000,
        resend_after_s: float = 2.0,
        max_pending: int = 20_000,
    ) -> None:
        self._socket = _socket(ctx, zmq.DEALER)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards an absent uplink
        self._socket.connect(endpoint)
        self._on_ack = on_ack
        self._batch_size, self._window = batch_size, window
        self._resend_after_s, self._max_pending = resend_after_s, max_pending
        # id -> (is a status, the record's msgpack bytes): encoded once, at submit
        self._pending: collections.OrderedDict[str, tuple[bool, bytes]] = collections.OrderedDict()
        self._unsent: collections.deque[str] = collections.deque()
        self._in_flight: dict[str, float] = {}
        self._submitted = asyncio.Event()  # wakes an idle sender
        self.dropped_status = 0
        self.unencodable = 0
        self.acknowledged = 0

    @property
    def pending(self) -> int:
        """Records not yet acknowledged."""
        return len(self._pending)

    def submit(self, record: Record) -> bool:
        """Queue a record for the uplink (a record with a known id replaces nothing); False
        when the record cannot be encoded (logged and counted, never raised: one bad value
        must not stop the caller's loop)."""
        if record.id in self._pending:
            return True
        try:
            data = msgpack_encoder.encode(record)
        except (OverflowError, ValueError, TypeError, msgspec.EncodeError) as err:
            self.unencodable += 1
            logger.error("record %s cannot be encoded, not sent: %s", record.id, err)
            return False
        self._pending[record.id] = (isinstance(record, Status), data)
        self._unsent.append(record.id)
        self._submitted.set()
        if len(self._pending) > self._max_pending:
            self._drop_oldest_status()
        return True

    def _drop_oldest_status(self) -> None:
        for record_id, (is_status, _) in self._pending.items():
            if is_status:
                del self._pending[record_id]
                self._in_flight.pop(record_id, None)
                self.dropped_status += 1
                if self.dropped_status in (1, 10, 100) or self.dropped_status % 1000 == 0:
                    logger.warning(
                        "uplink not acknowledging: %d status records dropped", self.dropped_status
                    )
                return

    async def run(self, stop: asyncio.Event, problems: Problems | None = None) -> None:
        """Send, re-send and collect acknowledgements until `stop` is set."""
        guard = LoopGuard("record sender", problems or Problems(None, "sender"))
        waker = asyncio.create_task(wake_on(stop, self._submitted))  # an idle wait ends too
        try:
            await guarded_loop(guard, lambda: self._step(100), stop)
        finally:
            waker.cancel()

    async def flush(self, within_s: float) -> bool:
        """Keep sending until nothing is pending or the time is up; True when all were acked."""
        deadline = time.monotonic() + within_s
        while self._pending and time.monotonic() < deadline:
            await self._step(50)
        return not self._pending

    async def _step(self, wait_ms: int) -> None:
        """Re-queue what is overdue, send what fits the window, take acks for up to wait_ms.
        With nothing in flight there is no ack to wait for: sleep until a record is
        submitted (or IDLE_WAIT_S), so an idle sender costs a Pi no wakeups."""
        self._requeue_overdue(time.monotonic())
        await self._send_some()
        if not self._in_flight and not self._unsent:
            self._submitted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._submitted.wait(), IDLE_WAIT_S)
            return
        if await self._socket.poll(wait_ms):
            await self._receive_acks()

    def close(self) -> None:
        """Close the socket; what is pending is lost from memory (events stay in journals)."""
        self._socket.close(linger=0)

    def _requeue_overdue(self, now: float) -> None:
        overdue = [
            rid for rid, sent in self._in_flight.items() if now - sent > self._resend_after_s
        ]
        for record_id in reversed(overdue):
            del self._in_flight[record_id]
            self._unsent.appendleft(record_id)

    async def _send_some(self) -> None:
        while self._unsent and len(self._in_flight) < self._window:
            ids: list[str] = []
            batch: list[msgspec.Raw] = []
            while self._unsent and len(batch) < self._batch_size:
                record_id = self._unsent.popleft()
                pending = self._pending.get(record_id)
                if pending is not None and record_id not in self._in_flight:
                    ids.append(record_id)
                    batch.append(msgspec.Raw(pending[1]))
            if not batch:
                return
            try:
                await self._socket.send(encode(Submit(tuple(batch))), flags=zmq.NOBLOCK)
            except zmq.Again:  # no uplink connected (IMMEDIATE): try again later
                self._unsent.extendleft(reversed(ids))
                return
            sent_at = time.monotonic()
            for record_id in ids:
                self._in_flight[record_id] = sent_at

    async def _receive_acks(self) -> None:
        while True:
            try:
                data = await self._socket.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = decode(data)
            except DECODE_ERRORS as err:
                logger.warning("ignoring undecodable message from the uplink: %s", err)
                continue
            if isinstance(message, Ack):
                acked = {rid for rid in message.ids if self._pending.pop(rid, None) is not None}
                for record_id in acked:
                    self._in_flight.pop(record_id, None)
                self.acknowledged += len(acked)
                if acked:
                    self._on_ack(acked)


@dataclass(frozen=True)
class InvalidRecord:
    """A record the uplink could not decode: kept (as JSON when possible) with the reason."""

    record_id: str
    kind: str
    scope: str
    body: bytes
    reason: str


@dataclass(frozen=True)
class Received:
    """One batch from one sender: the records that decoded, and those that did not."""

    peer: bytes
    records: tuple[Record, ...]
    invalid: tuple[InvalidRecord, ...] = ()

    @property
    def ids(self) -> list[str]:
        """Every id in the batch, valid or not (all of them are acknowledged once stored)."""
        return [r.id for r in self.records] + [r.record_id for r in self.invalid]


def _invalid_record(data: bytes, err: Exception) -> InvalidRecord:
    """What can be read of a record that failed to decode, for the dead-letter store."""
    try:
        loose = msgspec.msgpack.decode(data)
        body = msgspec.json.encode(loose)
    except (*DECODE_ERRORS, msgspec.EncodeError, ValueError, TypeError, OverflowError):
        loose, body = None, msgspec.json.encode({"undecodable_msgpack": data.hex()[:4096]})
    fields = loose if isinstance(loose, dict) else {}

    def text(key: str, default: str) -> str:
        value = fields.get(key)
        return value[:200] if isinstance(value, str) else default

    return InvalidRecord(
        record_id=text("id", f"invalid:{hashlib.sha256(data).hexdigest()[:32]}"),
        kind=text("kind", "unknown"),
        scope=text("printer_id", ""),
        body=body,
        reason=safe(f"record failed validation in the uplink: {err}", 500),
    )


class RecordReceiver:
    """The uplink's side of the records channel: receive batches, acknowledge after durable."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        self._socket = _socket(ctx, zmq.ROUTER)
        _bind(self._socket, endpoint)

    async def receive(self, timeout_s: float) -> Received | None:
        """The next batch and its sender's identity, or None after timeout_s. Each record is
        decoded on its own: one that fails is returned among ``invalid``, never dropped."""
        if not await self._socket.poll(int(timeout_s * 1000)):
            return None
        frames = await self._socket.recv_multipart()
        if len(frames) != 2:
            logger.warning("ignoring a %d-frame message on the records channel", len(frames))
            return None
        try:
            message = decode(frames[1])
        except DECODE_ERRORS as err:
            logger.warning("ignoring undecodable record batch: %s", err)
            return None
        if not isinstance(message, Submit):
            logger.warning("ignoring %s on the records channel", type(message).__name__)
            return None
        records: list[Record] = []
        invalid: list[InvalidRecord] = []
        for raw in message.records:
            data = bytes(raw)
            try:
                records.append(record_msgpack_decoder.decode(data))
            except DECODE_ERRORS as err:
                invalid.append(_invalid_record(data, err))
                logger.error("record %s is invalid: %s", invalid[-1].record_id, err)
        return Received(frames[0], tuple(records), tuple(invalid))

    async def acknowledge(self, peer: bytes, ids: list[str]) -> None:
        """Tell a sender these ids are durable."""
        await self._socket.send_multipart([peer, encode(Ack(tuple(ids)))])

    def close(self, linger_ms: int = 0) -> None:
        """Close the socket, giving acks still queued up to `linger_ms` to leave (a clean
        stop: a sender that gets them sends nothing twice)."""
        self._socket.close(linger=linger_ms)


CommandHandler = Callable[[Execute], Awaitable[Answer]]


class CommandServer:
    """The poller's side of the commands channel: one task per request, replies by id."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        handler: CommandHandler,
        name: str = "command server",
    ) -> None:
        self._socket = _socket(ctx, zmq.ROUTER)
        _bind(self._socket, endpoint)
        self._handler = handler
        self.name = name  # names its loop in `status` (one server per printer)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event, problems: Problems | None = None) -> None:
        """Serve until `stop`; then wait (bounded) for commands already running."""
        guard = LoopGuard(self.name, problems or Problems(None, "commands"))
        await guarded_loop(guard, self._take_one, stop)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=15)

    async def _take_one(self) -> None:
        if not await self._socket.poll(int(IDLE_POLL_S * 1000)):  # a request wakes it at once
            return
        frames = await self._socket.recv_multipart()
        try:
            request = decode(frames[-1])
        except DECODE_ERRORS as err:
            logger.warning("ignoring undecodable command request: %s", err)
            return
        if not isinstance(request, Execute):
            logger.warning("ignoring %s on the commands channel", type(request).__name__)
            return
        task = asyncio.create_task(self._serve(frames[:-1], request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, envelope: list[bytes], request: Execute) -> None:
        try:
            answer = await self._handler(request)
        except Exception as err:
            logger.exception("command %s: unexpected error", request.command_id)
            answer = Answer(request.command_id, "failed", f"internal error: {err}"[:300])
        await self._socket.send_multipart([*envelope, encode(Executed(answer))])

    def close(self) -> None:
        """Close the socket."""
        self._socket.close(linger=0)


@dataclass(frozen=True)
class CommandReply:
    """Whether a request reached a poller at all, and its answer if one came."""

    sent: bool
    answer: Answer | None


async def request_command(
    ctx: zmq.asyncio.Context,
    endpoint: str,
    request: Execute,
    *,
    timeout_s: float,
    attempts: int = 3,
) -> CommandReply:
    """Send a command and wait for its answer, retrying with the same id.

    The request is only sent to a poller that is connected right now (IMMEDIATE, and a short
    wait for the connection): a request must never sit in a queue and reach a poller that
    starts later, when the command may be stale.
    """
    sock = _socket(ctx, zmq.DEALER)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.connect(endpoint)
    sent = False
    try:
        for _ in range(attempts):
            if not await sock.poll(500, zmq.POLLOUT):  # type: ignore[call-arg]
                continue
            try:
                await sock.send(encode(request), flags=zmq.NOBLOCK)
            except zmq.Again:
                continue
            sent = True
            answer = await _answer_to(sock, request.command_id, timeout_s)
            if answer is not None:
                return CommandReply(True, answer)
        return CommandReply(sent, None)
    finally:
        sock.close(linger=0)


async def _answer_to(sock: zmq.asyncio.Socket, command_id: str, timeout_s: float) -> Answer | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if not await sock.poll(int(left * 1000) + 1):
            return None
        try:
            message = decode(await sock.recv())
        except DECODE_ERRORS as err:
            logger.warning("ignoring undecodable command answer: %s", err)
            continue
        if isinstance(message, Executed) and message.answer.command_id == command_id:
            return message.answer
    return None


class TapPublisher:
    """The uplink's side of the tap: a record published never waits and may be dropped."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        # A plain (blocking-API) socket on the same context: a NOBLOCK send on PUB never
        # waits, and skips the per-message future of the asyncio wrapper.
        self._socket: zmq.Socket[bytes] = zmq.Context.shadow(ctx.underlying).socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 10_000)
        _bind(self._socket, endpoint)

    def publish(self, records: Iterable[Record]) -> None:
        """Publish records as JSON to whoever is subscribed (nobody, mostly)."""
        for record in records:
            with contextlib.suppress(zmq.Again):
                self._socket.send(json_encoder.encode(record), flags=zmq.NOBLOCK)

    def close(self) -> None:
        """Close the socket."""
        self._socket.close(linger=0)


class TapSubscriber:
    """``printer-gateway tap``'s side: the JSON bytes of each record the uplink accepts."""

    def __init__(self, endpoint: str) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._ctx.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)

    def receive(self) -> bytes:
        """The next record (blocks; Ctrl-C interrupts)."""
        return self._socket.recv()

    def close(self) -> None:
        """Close the socket and its context."""
        self._socket.close(linger=0)
        self._ctx.term()
