"""Small health facts the services leave in ``runtime_dir`` for ``printer-gateway status``.

``starts/<service>`` counts starts since ``up`` began (restarts = starts - 1);
``printers/<id>.json`` is each printer's state, lease and last contact, rewritten by the
poller (runtime_dir is tmpfs on a Pi: no fsync, no SD-card wear).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from gateway.files import write_atomically


class PrinterHealth(msgspec.Struct, frozen=True):
    """What ``status`` shows for one printer."""

    printer_id: str
    state: str
    lease_held: bool
    last_contact: str | None


def record_start(runtime_dir: str, service: str) -> int:
    """Count one more start of a service; returns the count."""
    path = Path(runtime_dir) / "starts" / service
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        count = int(path.read_text() or "0") + 1
    except (FileNotFoundError, ValueError):
        count = 1
    write_atomically(path, str(count).encode())
    return count


def starts(runtime_dir: str, service: str) -> int:
    """How often a service started since ``up`` began (0: never)."""
    try:
        return int((Path(runtime_dir) / "starts" / service).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def reset_starts(runtime_dir: str) -> None:
    """Forget start counts (``up`` begins a new count)."""
    folder = Path(runtime_dir) / "starts"
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink()


def write_printer(runtime_dir: str, health: PrinterHealth) -> None:
    """Rewrite one printer's health file."""
    path = Path(runtime_dir) / "printers" / f"{health.printer_id}.json"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, msgspec.json.encode(health))


def read_printers(runtime_dir: str) -> list[PrinterHealth]:
    """Every printer's last written health."""
    folder = Path(runtime_dir) / "printers"
    result = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            result.append(msgspec.json.decode(path.read_bytes(), type=PrinterHealth))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            continue  # being rewritten, or from another version: skip this once
    return result
