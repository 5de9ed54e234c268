"""Control's pure parts and its ledger: checks, deadlines, restart states, the fetcher."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zmq.asyncio

from gateway.clock import BootClock
from gateway.commands import Answer, Pause, SetNozzleTemperature
from gateway.config import Secret, Token
from gateway.layout import Layout
from gateway.messages import Command
from services.control.ledger import Ledger
from services.control.service import Control, FetchThread, LatestAnswer, check
from services.control.source import (
    CommandSource,
    Fetched,
    FetchError,
    parse_command_list,
    seconds_until,
    split_entries,
)
from tests.support.configs import ConfigFactory, make_config
from tests.support.http import Reply, ScriptedServer, echo, hostile_api, no_commands

CONFIG = make_config(Path("/tmp"), {"rex1": 1}, limits={"max_nozzle_c": 240})


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Command(id="a", printer_id="rex1", type="pause"), Pause()),
        (
            Command(
                id="b", printer_id="rex1", type="set_nozzle_temperature", params={"celsius": 240}
            ),
            SetNozzleTemperature(240),
        ),
    ],
)
def test_check_accepts(command: Command, expected: object) -> None:
    assert check(command, CONFIG) == expected


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (Command(id="a", printer_id="nope", type="pause"), "unknown printer"),
        (Command(id="b", printer_id="rex1", type="explode"), "invalid 'explode'"),
        (
            Command(
                id="c", printer_id="rex1", type="set_nozzle_temperature", params={"celsius": 241}
            ),
            "outside 0..240",
        ),
        (
            Command(
                id="d", printer_id="rex1", type="set_nozzle_temperature", params={"celsius": 200.5}
            ),
            "invalid",
        ),
        (
            Command(id="e", printer_id="rex1", type="set_bed_temperature", params={"celsius": -1}),
            "outside 0..100",
        ),
        (Command(id="f", printer_id="rex1", type="light", params={"on": "yes"}), "invalid"),
    ],
)
def test_check_rejects_with_a_reason(command: Command, reason: str) -> None:
    result = check(command, CONFIG)
    assert isinstance(result, str)
    assert reason in result


def test_deadline_uses_the_servers_clock_not_ours() -> None:
    server_now = datetime(2030, 1, 1, tzinfo=UTC)  # our wall clock is years off: irrelevant
    assert seconds_until(server_now + timedelta(seconds=30), server_now, 120) == pytest.approx(30)
    assert seconds_until(server_now + timedelta(hours=1), server_now, 120) == 120
    assert seconds_until(server_now - timedelta(seconds=5), server_now, 120) == 0
    assert seconds_until(None, None, 120) == 120


def test_ledger_admits_once_and_keeps_states_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "control" / "ledger.db"
    ledger = Ledger(path)
    command = Command(id="c1", printer_id="rex1", type="pause")
    entry, new = ledger.admit(command, ledger.deadline_after(1e9))
    assert new
    assert entry.state == "received"
    assert ledger.admit(command, ledger.deadline_after(1e9))[1] is False
    ledger.handed("c1")
    ledger.close()
    ledger = Ledger(path)
    assert [e.command.id for e in ledger.in_state("handed")] == ["c1"]
    ledger.answer(Answer("c1", "done", "paused"), "2026-11-23T20:00:00+00:00")
    late = Answer("c1", "failed", "late answer")
    ledger.answer(late, "2026-11-23T20:00:01+00:00")  # never replaces
    answered = ledger.get("c1")
    assert answered is not None
    assert (answered.state, answered.answer) == ("answered", Answer("c1", "done", "paused"))
    ledger.reported("c1")
    assert ledger.in_state("answered") == []


class HandClock(BootClock):
    """A boot clock the test moves by hand."""

    def __init__(self) -> None:
        self.now, self.boot_name = 1000.0, "boot-1"

    def seconds(self) -> float:
        return self.now

    def boot(self) -> str:
        return self.boot_name


def test_ledger_deadline_is_on_the_boot_clock(tmp_path: Path) -> None:
    clock = HandClock()
    ledger = Ledger(tmp_path / "ledger.db", clock)
    entry, _ = ledger.admit(
        Command(id="c", printer_id="rex1", type="pause"), ledger.deadline_after(0.2)
    )
    assert not ledger.expired(entry)
    assert ledger.seconds_left(entry) == pytest.approx(0.2)
    clock.now += 0.25
    assert ledger.expired(entry)
    assert ledger.seconds_left(entry) == 0
    assert not ledger.overdue(entry, by_s=60)
    clock.now += 60
    assert ledger.overdue(entry, by_s=60)


def test_a_reboot_expires_what_was_pending(tmp_path: Path) -> None:
    clock = HandClock()
    ledger = Ledger(tmp_path / "ledger.db", clock)
    entry, _ = ledger.admit(
        Command(id="c", printer_id="rex1", type="pause"), ledger.deadline_after(3600)
    )
    clock.boot_name, clock.now = "boot-2", 5.0  # the boot clock restarts near zero
    assert ledger.expired(entry)
    assert ledger.seconds_left(entry) == 0


def command_server(body: bytes, status: int = 200) -> ScriptedServer:
    """A server that ignores `wait` and answers at once."""
    return ScriptedServer(lambda _: Reply(status, body), methods=("GET",), keep_alive=False)


def test_fetch_works_against_a_server_that_ignores_wait() -> None:
    body = b'{"commands": [{"id": "c-77", "printer_id": "rex1", "type": "pause", "params": {}, "created_at": "2026-11-23T20:31:00Z", "expires_at": null}]}'
    with command_server(body) as server:
        source = CommandSource(server.url + "/api", Secret("t"), "gw", wait_s=25)
        fetched = source.fetch()
        source.close()
    assert [c.id for c in fetched.commands] == ["c-77"]
    assert fetched.server_time is not None  # the stdlib server sends Date
    assert [r.path for r in server.received()] == ["/api/v1/commands?gateway_id=gw&wait=25"]


@pytest.mark.parametrize(
    ("body", "status"), [(b"{not json", 200), (b'{"commands": {"id": 1}}', 200), (b"{}", 503)]
)
def test_fetch_errors_are_typed_and_never_show_the_token(body: bytes, status: int) -> None:
    with command_server(body, status) as server:
        source = CommandSource(server.url, Secret("very-secret-token"), "gw", wait_s=1)
        with pytest.raises(FetchError) as caught:
            source.fetch()
        source.close()
    assert "very-secret-token" not in str(caught.value)


def test_fetching_does_not_spin_on_commands_already_held() -> None:
    body = b'{"commands": [{"id": "c-1", "printer_id": "rex1", "type": "pause", "params": {}}]}'
    with command_server(body) as server:
        source = CommandSource(server.url, Secret("t"), "gw", wait_s=25)
        loop = asyncio.new_event_loop()
        fetcher = FetchThread(source, LatestAnswer(loop))
        fetcher.start()
        time.sleep(2.5)
        fetcher.stopping.set()
        fetcher.join(5)
        source.close()
        loop.close()
    assert 2 <= len(server.received()) <= 9  # backing off to one request a second, not hundreds


def test_a_malformed_command_is_rejected_alone_and_reported(
    configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    config = configs.make({"rex1": 1})
    body = json.dumps(
        {
            "commands": [
                {"id": "bad", "printer_id": "rex1", "type": "pause", "expires_at": "tomorrow"},
                {"id": "good", "printer_id": "rex1", "type": "pause"},
                {"printer_id": "rex1", "type": "pause"},
            ]
        }
    ).encode()

    async def main() -> None:
        control = Control(config, Token(Secret("t"), "test"), zmq_context)
        latest = LatestAnswer(asyncio.get_running_loop())
        with command_server(body) as server:
            source = CommandSource(server.url, Secret("t"), "gw", wait_s=1)
            latest.put(source.fetch())
            source.close()
        await control._take_latest(latest)
        bad = control.ledger.get("bad")
        assert bad is not None
        assert bad.state == "answered"
        assert bad.answer is not None
        assert bad.answer.outcome == "rejected"
        assert "expires_at" in bad.answer.detail
        good = control.ledger.get("good")
        assert good is not None
        assert good.state in ("received", "handed")  # on its way to the poller
        assert control.sender.pending == 1  # the rejection's result record
        tasks = list(control._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # their sockets closed
        control.sender.close()
        control.injected.close()
        control.db.close()
        control.source.close()

    asyncio.run(main())


def test_a_refused_token_is_reported_while_it_lasts() -> None:
    with hostile_api() as api:
        api.commands = echo(401)
        source = CommandSource(api.url, Secret("t0k3n-secret"), "gw", wait_s=1)
        loop = asyncio.new_event_loop()
        fetcher = FetchThread(source, LatestAnswer(loop))
        assert fetcher._fetch_once() <= 15.0
        (problem,) = fetcher.problems.current()
        assert problem.key == "api auth"
        assert "HTTP 401" in problem.reason
        assert "t0k3n-secret" not in problem.reason
        api.commands = no_commands
        fetcher._fetch_once()
        assert fetcher.problems.current() == ()
        source.close()
        loop.close()


def test_a_list_over_the_size_cap_gives_the_commands_complete_within_it() -> None:
    junk = [
        {"id": f"j{n}", "printer_id": "rex1", "type": "pause", "params": {"x": "]}{[" * 15_000}}
        for n in range(100)  # 6 MB of commands with junk params ...
    ]
    body = json.dumps({"commands": [*junk, {"id": "good", "printer_id": "rex1", "type": "pause"}]})
    with command_server(body.encode()) as server:
        source = CommandSource(server.url, Secret("t"), "gw", wait_s=1)
        fetched = source.fetch()  # ... is not an error: the first 4 MB are taken
        source.close()
    assert fetched.capped
    ids = [c.id for c in fetched.commands]
    assert 60 <= len(ids) < 100
    assert ids == [f"j{n}" for n in range(len(ids))]  # whole entries, in order
    assert all(isinstance(check(c, CONFIG), str) for c in fetched.commands)  # junk: rejected


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (b'{"commands": [{"id": "a"}, {"id": "b"}, {"id": "c', ["a", "b"]),  # cut at the cap
        (b'{"commands": [{"id": "a,]}"}, {"id', ["a,]}"]),
        (b'{"commands": [{"id": "a"}]}', ["a"]),
        (b'{"other": 1, "commands": [', []),
        (
            b'{"commands": [{"id": "a"}, {"id": "victim", "note": "x}, {\\"y',
            ["a"],
        ),  # cut in a string
        (b'{"x": {"commands": [{"id": "nested"}]}, "commands": [{"id": "top"}]}', ["top"]),
        (b'{"commands": [{"id": "first"}], "commands": [{"id": "last"}]}', ["last"]),
        (b'{"commands": [{"id": "evil"}], "comm\\u0061nds": [{"id": "escaped"}]}', ["escaped"]),
    ],
)
def test_split_entries(body: bytes, ids: list[str]) -> None:
    entries = split_entries(body)
    assert entries is not None
    assert [json.loads(entry)["id"] for entry in entries] == ids
    assert split_entries(b"garbage") is None


def test_one_entry_that_breaks_the_decoder_spoils_only_itself() -> None:
    deep = {"id": "deep", "printer_id": "rex1", "type": "pause", "params": {"a": "NEST"}}
    half = {"id": "half", "printer_id": "rex1", "type": "light", "params": {"on": "SURR"}}
    good = {"id": "good", "printer_id": "rex1", "type": "pause"}
    body = json.dumps({"commands": [deep, half, good]}).encode()
    body = body.replace(b'"NEST"', b"[" * 5000 + b"]" * 5000)
    body = body.replace(b'"SURR"', b'"\\ud83d"')  # half an emoji, as JSON.stringify writes it
    parsed = parse_command_list(body)
    assert [c.id for c in parsed.commands] == ["good"]
    assert {c.id for c in parsed.invalid} == {"deep", "half"}


def test_a_stop_with_a_command_on_a_silent_poller_ends_promptly_and_keeps_it(
    configs: ConfigFactory, zmq_context: zmq.asyncio.Context
) -> None:
    """The poller took the request and never answers: control still stops within seconds,
    closing the request's socket, and the command stays `handed` for the next run."""
    config = configs.make({"rex1": 1})
    layout = Layout.of(config)

    async def main() -> float:
        control = Control(config, Token(Secret("t"), "test"), zmq_context)
        silent = zmq_context.socket(zmq.ROUTER)  # a poller that takes requests, never answers
        silent.bind(layout.poller_endpoint("rex1"))
        stop = asyncio.Event()
        running = asyncio.create_task(control.run(stop))
        command = Command(id="c1", printer_id="rex1", type="pause")
        await control._admit(command, Fetched((command,), None))
        assert await silent.poll(5000)  # the request reached the poller
        stop.set()
        began = time.monotonic()
        await asyncio.wait_for(running, 15)
        silent.close(linger=0)
        return time.monotonic() - began

    took = asyncio.run(main())
    assert took < 8  # 5 s of grace for commands in flight, not the 15 s answer timeout
    entry = Ledger(layout.ledger_db).get("c1")
    assert entry is not None
    assert entry.state == "handed"
