"""Shared fixtures, on top of tests/support (the helpers themselves)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.asyncio

from simulator import PrinterSimulator, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.mosquitto import Broker
from tests.support.printers import fast_model
from tests.support.zmq_context import terminate

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRINTER_GATEWAY_SHARED", REPO.parent / "shared"))


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator on 127.0.0.1:<free port> with a fast-heating model."""
    with SimulatorThread(PrinterSimulator(fast_model())) as thread:
        yield thread


@pytest.fixture
def configs(tmp_path: Path) -> ConfigFactory:
    """Gateway configs with data_dir and runtime_dir under tmp_path (tests/support/configs.py)."""
    return ConfigFactory(tmp_path)


@pytest.fixture
def cli() -> Cli:
    """`printer-gateway` in a child process (tests/support/cli.py); `cli.on(path)` adds --config."""
    return Cli()


@pytest.fixture
def zmq_context() -> Iterator[zmq.asyncio.Context]:
    """The test's ZeroMQ context. At teardown it is terminated within 5 s: a socket the test
    left open is closed (LINGER 0) and fails the test by name, and a context that still
    cannot end fails it too, instead of hanging until the global timeout."""
    ctx = zmq.asyncio.Context()
    yield ctx
    problem = terminate(ctx)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on 127.0.0.1:<free port> (skipped, saying why, where there is none)."""
    started = Broker(tmp_path)
    started.start()
    try:
        yield started
    finally:
        started.close()
