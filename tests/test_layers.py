"""The layers are in the folders, and the imports keep to them (docs/architecture.md):

    console/                      the printer-gateway command, operator tools, generators
    services/poller|uplink|control|bridge|metrics  the services  simulator/  reference_api/
    gateway/                      the library every process shares

A package imports only from its own layer and the ones below: the library from itself,
each service from the library and itself (never another service), the simulator and the
reference API from the library and themselves, the console from anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("gateway", "services", "simulator", "reference_api", "console")


def _package_of(module: str) -> str:
    """``services.poller.watcher`` -> ``services.poller``; ``gateway.bus`` -> ``gateway``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "services" and len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """The project packages a module imports (at any depth: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found |= {_package_of(name) for name in names if name.split(".")[0] in OURS}
    return found


ALLOWED = {
    "gateway": {"gateway"},
    "services.poller": {"gateway", "services.poller"},
    "services.uplink": {"gateway", "services.uplink"},
    "services.control": {"gateway", "services.control"},
    "services.bridge": {"gateway", "services.bridge"},
    "services.metrics": {"gateway", "services.metrics"},
    "simulator": {"gateway", "simulator"},
    "reference_api": {"gateway", "reference_api"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_itself_and_below(package: str) -> None:
    folder = REPO.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    assert files, f"no modules in {folder}"
    wrong = {
        str(path.relative_to(REPO)): sorted(_imports(path) - ALLOWED[package]) for path in files
    }
    assert {name: bad for name, bad in wrong.items() if bad} == {}


def test_nothing_below_the_console_imports_it() -> None:
    for package in ALLOWED:
        for path in REPO.joinpath(*package.split(".")).rglob("*.py"):
            assert "console" not in _imports(path), path


def test_every_project_package_has_a_rule() -> None:
    folders = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}
    services = {f"services.{p.name}" for p in (REPO / "services").iterdir() if p.is_dir()}
    services.discard("services.__pycache__")
    assert (folders - {"services", "tests", "benchmarks"}) | services == {*ALLOWED, "console"}


# Decisions without I/O: each is tested by tables of inputs, never by a socket or a clock.
PURE = (
    "gateway/commands.py",
    "gateway/ids.py",
    "gateway/uuid7.py",
    "gateway/messages.py",
    "gateway/discovery.py",
    "console/discover_report.py",
    "services/poller/protocol.py",
    "services/poller/events.py",
    "services/poller/schedule.py",
    "services/poller/report.py",
    "services/poller/jobs.py",
    "services/poller/estimate.py",
    "services/poller/job_report.py",
    "services/bridge/topics.py",
    "services/bridge/homeassistant.py",
)
IO_MODULES = {"asyncio", "socket", "zmq", "sqlite3", "requests", "threading", "subprocess"}


def _top_level_imports(path: Path) -> set[str]:
    """Every top-level module name a file imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_decision_modules_do_no_io(module: str) -> None:
    assert _top_level_imports(REPO / module) & IO_MODULES == set()
