"""The ``printer-gateway`` command as a user runs it, in a child process.

``python -m console.cli`` is the console script without needing it on PATH; its argv is
defined here once. ``Cli(config)`` puts ``--config CONFIG`` before every verb.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping
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
