"""A hostile API against the real gateway under supervisord: error pages that echo the
Authorization header, a refused token, dripping and enormous answers, 413/400 answers,
poison commands. The gateway keeps delivering, commands keep flowing, `status` tells the
truth, nothing acknowledged is lost, and the token appears nowhere it writes or prints."""

from __future__ import annotations

import base64
import itertools
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.http import HostileApi, Reply, Request, echo, hostile_api, no_commands, stored
from tests.support.processes import status, supervised, supervised_pid
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
TOKEN = "hostile-test-token-5f0c2a9e7d"


def _config(tmp_path: Path, url: str, port: int) -> Path:
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir(mode=0o700)
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    return write_config(
        tmp_path,
        {"rex1": {"port": port, "poll_interval_s": 0.2, "probe_interval_s": 0.5}},
        api_url=url,
        token=None,
        api={"token_file": token_file, "timeout_s": 2},
    )


def _log(tmp_path: Path, program: str) -> str:
    """A supervisord program's log (the `uplink` program runs the uplink and control)."""
    path = tmp_path / "data" / "logs" / f"{program}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _problems(config: Path) -> list[str]:
    return [str(p) for p in status(config)[1]["problems"]]


def _token_forms() -> list[bytes]:
    raw = TOKEN.encode()
    return [
        raw,
        urllib.parse.quote(TOKEN).encode(),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def _assert_token_nowhere(tmp_path: Path, config: Path) -> None:
    """Every file the gateway wrote (logs, queue, ledger, journals, runtime files) and every
    tool's output: no form of the token in any of them."""
    places: dict[str, bytes] = {}
    for root in (tmp_path / "data", tmp_path / "run"):
        for path in root.rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_bytes()
    for args in (
        ("status",),
        ("status", "--json"),
        ("queue", "stats"),
        ("queue", "dead"),
        ("queue", "peek"),
        ("check-config",),
    ):
        result = Cli(config).run(*args)
        places[" ".join(args)] = (result.stdout + result.stderr).encode()
    assert len(places) > 10
    leaks = [name for name, data in places.items() for form in _token_forms() if form in data]
    assert leaks == [], leaks


def test_echoing_refusing_and_dripping_api_never_leaks_the_token(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    with hostile_api() as api:
        config = _config(tmp_path, api.url, sim.port)
        with supervised(config, tmp_path / "run"):
            wait_for(api.stored_records)  # the happy path first

            # Error pages that quote the request, Authorization header included.
            api.records, api.commands = echo(500), echo(500)
            wait_for(lambda: "delivery failing" in _log(tmp_path, "uplink"))
            wait_for(lambda: "fetching commands failed" in _log(tmp_path, "uplink"))

            # The token refused: a condition of the gateway, nothing dead-lettered.
            api.records, api.commands = echo(401), echo(403)
            refused_since = len(api.posts())
            wait_for(
                lambda: (
                    {"uplink", "control"}
                    <= {p.split(":")[0] for p in _problems(config) if "refuses the token" in p}
                )
            )
            wait_for(lambda: len(api.posts()) >= refused_since + 2, within_s=40)
            code, report = status(config)
            assert code == 1
            assert report["queue"]["dead"] == 0
            refused = api.posts()[refused_since:]
            gaps = [b.at - a.at for a, b in itertools.pairwise(refused)]
            assert max(gaps[1:], default=0) <= 15.5  # kept trying at least every 15 s

            # A server that drips its answer: cut at the total deadline (timeout_s = 2).
            api.records = lambda r: Reply(200, b'{"stored": 0}', drip_s=0.5)
            wait_for(lambda: "no complete answer within 2 s" in _log(tmp_path, "uplink"))

            # The server is fixed: everything arrives, the problems clear, no restart.
            before = len(api.stored_records())
            api.records, api.commands = stored, no_commands
            wait_for(lambda: len(api.stored_records()) > before + 20, within_s=60)
            wait_for(lambda: status(config)[0] == 0, within_s=30)
            assert supervised_pid(tmp_path / "run", "uplink") is not None
    _assert_gapless(api, config, [])
    assert "Traceback" not in _log(tmp_path, "uplink")
    _assert_token_nowhere(tmp_path, config)


def _assert_gapless(api: HostileApi, config: Path, dead: list[dict[str, Any]]) -> None:
    """Every seq the uplink gave is accounted for: delivered, dead-lettered, or still queued
    (nothing acknowledged was lost)."""
    peek = Cli(config).run("queue", "peek", "--limit", "100000").stdout.splitlines()
    queued = [json.loads(line) for line in peek]
    seqs = sorted(
        r["seq"]
        for r in [*api.stored_records(), *queued, *(d["record"] for d in dead)]
        if r["seq"] is not None
    )
    assert seqs == list(range(1, len(seqs) + 1))


def _open_commands(api: HostileApi, listed: list[Any]) -> Callable[[Request], Reply]:
    """A command list that keeps every entry until a result with its id was stored."""

    def reply(_: Request) -> Reply:
        answered = {r.get("command_id") for r in api.stored_records()}
        still = [c for c in listed if not (isinstance(c, dict) and c.get("id") in answered)]
        return Reply(200, json.dumps({"commands": still}).encode())

    return reply


def _results(api: HostileApi) -> dict[str, dict[str, Any]]:
    return {r["command_id"]: r for r in api.stored_records() if r["kind"] == "command_result"}


def test_poison_commands_huge_lists_and_picky_batches(sim: SimulatorThread, tmp_path: Path) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(duration_s=600)))
    with hostile_api() as api:

        def picky(request: Request) -> Reply:
            """413 for large bodies, 400 for any batch holding a print_paused event."""
            if len(request.body) > 3000:
                return Reply(413, b'{"error": "too large"}')
            if b'"print_paused"' in request.body:
                return Reply(400, b'{"error": "I do not like pauses"}')
            return Reply(200, b"{}")

        api.records = picky
        config = _config(tmp_path, api.url, sim.port)
        with supervised(config, tmp_path / "run"):
            wait_for(lambda: len(api.stored_records()) > 5)

            # A command list far over the cap: read no further, memory stays flat.
            api.commands = lambda r: Reply(200, b'{"commands": [', padding_bytes=300 * 2**20)
            wait_for(lambda: "more commands than are taken at once" in _log(tmp_path, "uplink"))
            pid = supervised_pid(tmp_path / "run", "uplink")  # control runs in it
            rss_kb = int(
                next(
                    line.split()[1]
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")
                )
            )
            assert rss_kb < 150_000, rss_kb

            # Poison beside a good command: the good one runs, the bad one is rejected alone.
            listed: list[Any] = [
                {"id": "bad-1", "printer_id": "rex1", "type": "pause", "expires_at": "tomorrow"},
                {"id": "c-ok", "printer_id": "rex1", "type": "pause", "params": {}},
                {"id": "bad-2", "printer_id": "rex1", "type": "pause", "params": [1]},
                {"id": 5, "type": "pause"},
                {"no": "id"},
                "a string",
                None,
            ]
            api.commands = _open_commands(api, listed)
            wait_for(lambda: {"bad-1", "c-ok", "bad-2"} <= _results(api).keys(), within_s=40)
            results = _results(api)
            assert results["c-ok"]["outcome"] == "done"
            assert results["bad-1"]["outcome"] == results["bad-2"]["outcome"] == "rejected"
            assert "expires_at" in results["bad-1"]["detail"]
            assert sim.truth()["status"] == "PAUSED"

            # The print_paused event was refused alone (400): dead-lettered, the rest arrived.
            wait_for(lambda: status(config)[1]["queue"]["dead"] == 1)
            code, report = status(config)
            assert code == 1
            assert any("dead-letter" in p for p in report["problems"])
            api.commands = no_commands
    dead = [json.loads(line) for line in Cli(config).run("queue", "dead").stdout.splitlines()]
    assert [d["record"]["event"] for d in dead] == ["print_paused"]
    assert "I do not like pauses" in dead[0]["reason"]
    events = [r for r in api.stored_records() if r["kind"] == "event"]
    assert [e["event"] for e in events][:2] == ["printer_online", "print_started"]
    _assert_gapless(api, config, dead)
    _assert_token_nowhere(tmp_path, config)
