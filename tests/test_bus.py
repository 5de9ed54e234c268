"""ZeroMQ channels: acknowledged record delivery with re-send, bounded memory, commands by id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import zmq.asyncio

from gateway.bus import (
    CommandServer,
    Execute,
    RecordReceiver,
    RecordSender,
    Submit,
    decode,
    encode,
    request_command,
)
from gateway.commands import Answer, Pause
from gateway.messages import Event, Status, utc_now
from tests.support.waiting import wait_until


def status(n: int) -> Status:
    return Status(id=f"s{n}", printer_id="p", ts=utc_now(), state="idle")


def event(n: int) -> Event:
    return Event(id=f"e{n}", printer_id="p", ts=utc_now(), event="printer_online")


Scenario = Callable[[zmq.asyncio.Context, str], Awaitable[None]]


def run(ctx: zmq.asyncio.Context, tmp_path: Path, scenario: Scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(ctx, f"ipc://{tmp_path}/bus/records.ipc"), 20))


def test_records_are_resent_until_acknowledged(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        acked: set[str] = set()
        receiver = RecordReceiver(ctx, endpoint)
        sender = RecordSender(ctx, endpoint, acked.update, resend_after_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        for n in range(3):
            sender.submit(status(n))
        first = await receiver.receive(2)  # received, but the "uplink" dies before acking
        assert first is not None
        again = await receiver.receive(2)  # so the same records come again
        assert again is not None
        assert again.ids == first.ids == ["s0", "s1", "s2"]
        await receiver.acknowledge(again.peer, ["s0", "s1", "s2"])
        await wait_until(lambda: acked == {"s0", "s1", "s2"})
        assert sender.pending == 0
        stop.set()
        await task
        sender.close()
        receiver.close()

    run(zmq_context, tmp_path, scenario)


def test_sender_waits_for_a_late_receiver(tmp_path: Path, zmq_context: zmq.asyncio.Context) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        acked: set[str] = set()
        sender = RecordSender(ctx, endpoint, acked.update, resend_after_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        sender.submit(event(1))
        await asyncio.sleep(0.3)  # nobody listening yet
        receiver = RecordReceiver(ctx, endpoint)
        got = await receiver.receive(3)
        assert got is not None
        await receiver.acknowledge(got.peer, got.ids)
        await wait_until(lambda: acked == {"e1"})
        stop.set()
        await task
        sender.close()
        receiver.close()

    run(zmq_context, tmp_path, scenario)


def test_memory_is_bounded_by_dropping_oldest_status_never_events(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        sender = RecordSender(ctx, endpoint, lambda ids: None, max_pending=10)
        for n in range(5):
            sender.submit(event(n))
        for n in range(20):
            sender.submit(status(n))
        assert sender.pending == 10
        assert sender.dropped_status == 15
        for n in range(20):
            sender.submit(event(100 + n))
        assert sender.pending == 25  # events are kept even past the cap
        sender.close()

    run(zmq_context, tmp_path, scenario)


def test_command_request_retries_with_the_same_id(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        seen: list[str] = []

        async def slow_handler(request: Execute) -> Answer:
            seen.append(request.command_id)
            await asyncio.sleep(0.3)
            return Answer(request.command_id, "done", "paused")

        server = CommandServer(ctx, endpoint, slow_handler)
        stop = asyncio.Event()
        task = asyncio.create_task(server.run(stop))
        reply = await request_command(
            ctx, endpoint, Execute("c-9", Pause()), timeout_s=0.2, attempts=3
        )
        assert reply.answer == Answer("c-9", "done", "paused")
        assert set(seen) == {"c-9"}
        assert len(seen) >= 2  # the retry reached the server with the same id
        stop.set()
        await task
        server.close()

    run(zmq_context, tmp_path, scenario)


def test_nobody_answering_gives_none(tmp_path: Path, zmq_context: zmq.asyncio.Context) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        reply = await request_command(
            ctx, endpoint, Execute("c", Pause()), timeout_s=0.1, attempts=2
        )
        assert reply.answer is None
        assert reply.sent is False  # nobody there: the request never left

    run(zmq_context, tmp_path, scenario)


def test_garbage_on_the_records_channel_is_ignored(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        receiver = RecordReceiver(ctx, endpoint)
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(endpoint)
        await dealer.send(b"\xc1garbage")
        assert await receiver.receive(1) is None
        await dealer.send(encode(Execute("c", Pause())))
        assert await receiver.receive(1) is None
        dealer.close()
        receiver.close()

    run(zmq_context, tmp_path, scenario)


def test_runtime_dir_is_owner_only(tmp_path: Path, zmq_context: zmq.asyncio.Context) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        RecordReceiver(ctx, endpoint).close()
        assert oct((tmp_path / "bus").stat().st_mode & 0o777) == "0o700"

    run(zmq_context, tmp_path, scenario)


def test_messages_round_trip() -> None:
    message = Execute("c-1", Pause())
    assert decode(encode(message)) == message
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'nope'"):
        decode(msgspec.msgpack.encode({"op": "nope"}))


def test_an_invalid_record_is_returned_alone_and_the_others_decode(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        receiver = RecordReceiver(ctx, endpoint)
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(endpoint)
        good = msgspec.msgpack.encode(status(1))
        bad = msgspec.msgpack.encode(  # a temperature no printer has: outside the bounds
            {**msgspec.to_builtins(status(2)), "nozzle": {"current": 1e300, "target": 0}}
        )
        await dealer.send(encode(Submit((msgspec.Raw(good), msgspec.Raw(bad)))))
        got = await receiver.receive(2)
        assert got is not None
        assert [r.id for r in got.records] == ["s1"]
        assert [(i.record_id, i.kind, i.scope) for i in got.invalid] == [("s2", "status", "p")]
        assert "nozzle" in got.invalid[0].reason
        assert got.ids == ["s1", "s2"]  # both acknowledged once stored (s2 as a dead letter)
        dealer.close()
        receiver.close()

    run(zmq_context, tmp_path, scenario)


def test_a_record_that_cannot_be_encoded_is_refused_alone(
    tmp_path: Path, zmq_context: zmq.asyncio.Context
) -> None:
    async def scenario(ctx: zmq.asyncio.Context, endpoint: str) -> None:
        sender = RecordSender(ctx, endpoint, lambda ids: None)
        huge = Event(id="e-huge", printer_id="p", ts=utc_now(), event="printer_online")
        huge = msgspec.structs.replace(huge, detail={"n": 10**30})  # no msgpack integer is this big
        assert sender.submit(huge) is False
        assert sender.submit(event(1)) is True
        assert (sender.pending, sender.unencodable) == (1, 1)
        sender.close()

    run(zmq_context, tmp_path, scenario)
