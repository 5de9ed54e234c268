"""The gateway's services as real processes (alone, or under supervisord via `up`), for
end-to-end tests."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

from console.deploy import supervisor_call
from gateway.layout import Layout
from simulator import SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.http import TOKEN, ApiThread
from tests.support.waiting import wait_for


class Services:
    """The services of one config, each ``run NAME...`` a real process that can be stopped,
    killed and started again; their stderr goes to `log`."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.cli = Cli(config)
        self.log: IO[bytes] = log.open("ab")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *more: str) -> None:
        """`run name [more...]`: one process running these services, known by `name`."""
        self.processes[name] = self.cli.start(
            "run", name, *more, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def stop(self, name: str) -> int:
        """SIGTERM one process; its exit code."""
        process = self.processes.pop(name)
        process.terminate()
        return process.wait(timeout=20)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> list[int]:
        """SIGTERM every process at once; their exit codes. The log is closed."""
        codes = []
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            codes.append(process.wait(timeout=20))
        self.processes.clear()
        self.log.close()
        return codes


class Gateway(Services):
    """The three services under test, each a real process that can be killed and restarted."""

    def __init__(
        self,
        tmp_path: Path,
        api_url: str,
        sim: SimulatorThread,
        ttl_s: float = 120,
        flavor: str = "v1",
        more_printers: dict[str, int] | None = None,
    ) -> None:
        config = write_config(
            tmp_path,
            {"rex1": sim.port, **(more_printers or {})},
            api_url=api_url,
            token=TOKEN,
            api={"flavor": flavor},
            control={"command_ttl_s": ttl_s},
        )
        super().__init__(config, tmp_path / "services.log")


@contextmanager
def running(
    tmp_path: Path, sim: SimulatorThread, ttl_s: float = 120
) -> Iterator[tuple[ApiThread, Gateway]]:
    with ApiThread(tmp_path / "api.db") as api:
        gateway = Gateway(tmp_path, api.url, sim, ttl_s)
        for name in ("uplink", "poller", "control"):
            gateway.start(name)
        try:
            yield api, gateway
        finally:
            codes = gateway.stop_all()
        assert all(code == 0 for code in codes), (tmp_path / "services.log").read_text()


def supervised_pid(runtime: Path, name: str) -> int | None:
    """The pid of a service supervisord reports RUNNING, else None."""
    try:
        info = supervisor_call(Layout(runtime.parent / "data", runtime), "getProcessInfo", name)
    except (OSError, xmlrpc.client.Error, http.client.HTTPException):
        return None
    return int(info["pid"]) if info["statename"] == "RUNNING" else None


def status(config: Path) -> tuple[int, dict[str, Any]]:
    """`status --json`: exit code and report."""
    result = Cli(config).run("status", "--json")
    return result.returncode, json.loads(result.stdout)


@contextmanager
def supervised(config: Path, runtime: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`up` on this config until the block ends (SIGTERM, exit 0 expected)."""
    up = Cli(config).start(
        "up",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for name in ("uplink", "poller"):  # the bundled conf's programs
            wait_for(partial(supervised_pid, runtime, name))
        yield up
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=40) == 0
