"""The test support package itself: waiting, configs, the CLI runner, the scripted server,
the bounded end of a ZeroMQ context."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
import requests
import zmq

from gateway.config import load_config
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory, Keys, Printers
from tests.support.http import Reply, Request, ScriptedServer
from tests.support.waiting import wait_for, wait_until
from tests.support.zmq_context import terminate


def test_wait_for_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", 5, every_s=0.001) == "done"


def test_wait_for_fails_naming_what_it_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as caught:
        wait_for(lambda: [].copy(), 0.05, every_s=0.01)
    assert "waited 0.05 s for wait_for(lambda: [].copy()" in str(caught.value)
    assert "last value []" in str(caught.value)
    with pytest.raises(AssertionError, match=r"waited 0\.05 s for the printer to wake up"):
        wait_for(lambda: None, 0.05, every_s=0.01, what="the printer to wake up")


def test_wait_until_lets_the_loop_run_and_fails_the_same_way() -> None:
    async def main() -> None:
        flag = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, flag.set)
        assert await wait_until(flag.is_set, 5) is True
        with pytest.raises(AssertionError, match=r"waited 0\.05 s for .*is_set.*last value False"):
            await wait_until(asyncio.Event().is_set, 0.05)

    asyncio.run(main())


def test_config_factory_keeps_files_under_the_root_and_takes_any_table(
    configs: ConfigFactory, tmp_path: Path
) -> None:
    printers: Printers = {"rex1": 8899, "p2": {"name": "Second", "host": "printer.lan"}}
    keys: Keys = {
        "api_url": "http://127.0.0.1:1234",
        "api": {"flavor": "legacy", "timeout_s": 2},
        "control": {"command_ttl_s": 5},
        "notify": {"urls": ["json://127.0.0.1:9/hook"], "events": ["print_finished"]},
    }
    path, config = configs.written(printers, **keys)
    assert path == tmp_path / "gateway.toml"
    assert load_config(path) == config == configs.make(printers, **keys)
    assert (config.gateway.id, config.gateway.data_dir, config.gateway.runtime_dir) == (
        "gw",
        str(tmp_path / "data"),
        str(tmp_path / "run"),
    )
    fast, other = config.printers
    assert (fast.id, fast.host, fast.port, fast.poll_interval_s, fast.probe_interval_s) == (
        "rex1",
        "127.0.0.1",
        8899,
        0.2,
        0.3,
    )
    assert (other.id, other.name, other.host, other.poll_interval_s) == (
        "p2",
        "Second",
        "printer.lan",
        1.0,  # the config's default: only what is given is written
    )
    assert (config.api.flavor, config.api.timeout_s, config.control.command_ttl_s) == (
        "legacy",
        2.0,
        5.0,
    )
    assert config.notify.events == ("print_finished",)


def test_config_factory_leaves_out_what_is_none(configs: ConfigFactory) -> None:
    text = configs.toml({"printer1": {"host": "h"}}, gateway_id=None, token=None)
    assert "token" not in text
    assert "\nid = " in text  # the printer's, not the gateway's
    assert not text.startswith("[gateway]\nid")


def test_the_cli_runner_puts_the_config_before_the_verb(cli: Cli, tmp_path: Path) -> None:
    assert cli.on(tmp_path / "g.toml").argv("status", "--json")[-4:] == [
        "--config",
        str(tmp_path / "g.toml"),
        "status",
        "--json",
    ]
    result = cli.run("--help")
    assert result.returncode == 0, result.stderr
    assert "check-config" in result.stdout


@pytest.mark.parametrize(("keep_alive", "version"), [(True, 11), (False, 10)])
def test_the_scripted_server_answers_keeps_requests_and_refuses_other_methods(
    keep_alive: bool, version: int
) -> None:
    def answer(request: Request) -> Reply:
        return Reply(201, b"hi " + request.body, {"X-Seen": request.path})

    with ScriptedServer(answer, methods=("POST",), keep_alive=keep_alive) as server:
        answered = requests.post(server.url + "/p", data=b"body", timeout=5)
        refused = requests.get(server.url + "/g", timeout=5)
    assert (answered.status_code, answered.content, answered.headers["X-Seen"]) == (
        201,
        b"hi body",
        "/p",
    )
    assert answered.raw.version == version
    assert "Date" in answered.headers
    assert refused.status_code == 501
    assert [(r.method, r.path, r.body) for r in server.received()] == [("POST", "/p", b"body")]


def test_a_zmq_socket_left_open_is_named_and_the_context_still_ends(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)  # LINGER -1 and a message for nobody: term() would hang
    dealer.connect(f"ipc://{tmp_path}/nobody.ipc")
    dealer.send(b"for nobody")
    began = time.monotonic()
    problem = terminate(ctx, within_s=5)
    assert time.monotonic() - began < 5
    assert (
        problem == f"1 ZeroMQ socket(s) left open by the test: DEALER ipc://{tmp_path}/nobody.ipc"
    )
    assert ctx.closed
    assert terminate(zmq.Context()) is None
