"""The gateway's three services as real processes, for end-to-end tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from gateway.simulator import SimulatorThread
from tests.api_harness import TOKEN, ApiThread

CLI = [sys.executable, "-m", "gateway.cli"]


class Gateway:
    """The three services under test, each a real process that can be killed and restarted."""

    def __init__(
        self,
        tmp_path: Path,
        api_url: str,
        sim: SimulatorThread,
        ttl_s: float = 120,
        flavor: str = "v1",
    ) -> None:
        self.config = tmp_path / "gateway.toml"
        self.config.write_text(
            f'[gateway]\nid = "gw"\ndata_dir = "{tmp_path}/data"\nruntime_dir = "{tmp_path}/run"\n'
            f'[api]\nurl = "{api_url}"\ntoken = "{TOKEN}"\nflavor = "{flavor}"\n'
            f"[control]\ncommand_ttl_s = {ttl_s}\n"
            f'[[printers]]\nid = "rex1"\nhost = "127.0.0.1"\nport = {sim.port}\n'
            "poll_interval_s = 0.2\nprobe_interval_s = 0.3\n"
        )
        self.log: IO[bytes] = (tmp_path / "services.log").open("ab")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.processes[name] = subprocess.Popen(
            [*CLI, "--config", str(self.config), "run", name],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> list[int]:
        codes = []
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            codes.append(process.wait(timeout=15))
        self.processes.clear()
        self.log.close()
        return codes


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
