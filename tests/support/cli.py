"""The ``printer-gateway`` command as a user runs it, in a child process.

``python -m console.cli`` is the console script without needing it on PATH; its argv is
defined here once. ``Cli(config)`` puts ``--config CONFIG`` before every verb.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

COMMAND = (sys.executable, "-m", "console.cli")

Output = int | IO[bytes] | None


class Cli:
    """Runs ``printer-gateway [--config CONFIG] ARGS...``."""

    def __init__(self, config: Path | None = None) -> None:
        self.config = config

    def on(self, config: Path) -> Cli:
        """The same command with ``--config config``."""
        return Cli(config)

    def argv(self, *args: str) -> list[str]:
        """The full argv."""
        config = ("--config", str(self.config)) if self.config else ()
        return [*COMMAND, *config, *args]

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """One run to completion, output captured as text; never raises on the exit code."""
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=input,
            check=False,
        )

    def start(
        self,
        *args: str,
        stdout: Output = subprocess.DEVNULL,
        stderr: Output = None,
        env: Mapping[str, str] | None = None,
        start_new_session: bool = False,
    ) -> subprocess.Popen[bytes]:
        """A long-running verb (``run uplink``, ``up``, ``api``, ...) in the background."""
        return subprocess.Popen(
            self.argv(*args),
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=start_new_session,
        )

    async def start_async(
        self, *args: str, stdout: Output = None, stderr: Output = None
    ) -> asyncio.subprocess.Process:
        """``start`` for async code."""
        return await asyncio.create_subprocess_exec(*self.argv(*args), stdout=stdout, stderr=stderr)


@contextlib.contextmanager
def discoverable_sim(
    command: Sequence[str], env: Mapping[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """``<command> sim --port 0 --discovery-port 0`` (the command: this checkout's or an
    installed one, with any further sim options after ``sim``), answering discovery on
    loopback: its (tcp, udp) ports. Stopped with SIGTERM on exit, and must exit 0."""
    argv = list(command)
    verb = argv.index("sim")
    argv[verb + 1 : verb + 1] = ["--port", "0", "--discovery-port", "0"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            tcp = re.search(r"listening on 127\.0\.0\.1:(\d+)", process.stdout.readline())
            udp = re.search(r"discovery on 127\.0\.0\.1:(\d+)/udp", process.stdout.readline())
            assert tcp
            assert udp
            yield int(tcp[1]), int(udp[1])
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
