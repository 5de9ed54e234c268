"""The simulated printer's state and its answers, free of I/O and driven by a clock.

What it reproduces, and from which capture (``../shared/protocol/captures``):

* replies framed ``CMD <code> Received.`` / payload / ``ok`` with CRLF (``*_rex_*``);
* M115 as a REX reporting "FlashForge Adventurer III" with the stray ``\\n`` after the MAC
  line (``m115_rex_fw2.2.1_masked.txt``);
* M105 ``T0:27 /0 B:20/0`` (space only before the nozzle slash, whole degrees; ``m105_rex_idle``);
* M27 ``SD printing byte d/100``; M119 with LED and CurrentFile (``m119_rex_fw1.3.7_printing``);
* pause in both reported forms: ``MachineStatus: PAUSED`` or ``BUILDING_FROM_SD`` with
  ``MoveMode: PAUSED`` (``pause_style``);
* control: ``Control Success.`` for the first controller, ``Control failed.`` for others.

Assumptions where no capture exists (REX II behaviour is unverified, see the protocol doc §11):
after completion the printer reports ``BUILDING_COMPLETED`` for ``completed_hold_s`` then
``READY`` with M27 still at the end; after cancel it is ``READY`` with M27 unchanged; bare
action commands work while nobody holds control and are acknowledged but ignored while
another client does (or always, with ``control_required``); non-integer temperatures are
acknowledged and ignored; unknown codes get a bare header + ``ok``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

AMBIENT_C = 22.0
PauseStyle = Literal["machine_status", "move_mode"]
_ACTIONS = frozenset({"M23", "M24", "M25", "M26", "M104", "M140", "M146"})
_INTEGER_S = re.compile(r"^S(\d{1,3})$")


@dataclass
class Heater:
    """First-order heater: approaches its target (or ambient when off) with time constant tau."""

    tau_s: float
    current: float = AMBIENT_C
    target: int = 0

    def advance(self, dt: float) -> None:
        """Move `current` towards the set point over dt seconds."""
        goal = float(self.target) if self.target > 0 else AMBIENT_C
        self.current += (goal - self.current) * (1.0 - math.exp(-dt / self.tau_s))

    def ready(self) -> bool:
        """Within 2 °C of a set target (an unset heater is always ready)."""
        return self.target <= 0 or self.current >= self.target - 2.0


@dataclass
class PrintJob:
    """A print: file, duration of the extrusion phase, and heater targets."""

    file: str = "benchy.gx"
    duration_s: float = 600.0
    nozzle_c: int = 210
    bed_c: int = 60
    size_bytes: int = 1_613_086


@dataclass
class PrinterModel:
    """State of one simulated REX-class printer; `handle` answers one request line."""

    name: str = "REX II Sim"
    machine_type: str = "FlashForge Adventurer III"
    firmware: str = "v2.2.1"
    serial: str = "SNSIM0000001"
    mac: str = "88:A9:A7:00:00:01"
    pause_style: PauseStyle = "machine_status"
    completed_hold_s: float = 10.0
    control_required: bool = False
    foreign_control: bool = False
    # A3 firmware per public clients (GhostTypes/ff-5mp-api-py): ~M601 S1 from a client whose
    # earlier session the printer still counts is answered "Error: have been connected".
    lingering_session: bool = False
    clock: Callable[[], float] = time.monotonic
    nozzle: Heater = field(default_factory=lambda: Heater(tau_s=6.0))
    bed: Heater = field(default_factory=lambda: Heater(tau_s=12.0))
    status: str = "READY"  # READY, BUILDING_FROM_SD, PAUSED, BUILDING_COMPLETED
    job: PrintJob | None = None
    done: float = 0.0  # fraction of the current/last job extruded
    led: bool = True
    controller: int | None = None
    _last: float = field(default=-1.0, repr=False)
    _completed_at: float = field(default=0.0, repr=False)

    # ------------------------------------------------------------------ lifecycle

    def advance(self) -> None:
        """Bring heaters and progress up to the clock's now."""
        now = self.clock()
        if self._last < 0:
            self._last = now
        dt, self._last = max(0.0, now - self._last), now
        self.nozzle.advance(dt)
        self.bed.advance(dt)
        if self.status == "BUILDING_FROM_SD" and self.job is not None:
            if self.nozzle.ready() and self.bed.ready():
                self.done = min(1.0, self.done + dt / self.job.duration_s)
            if self.done >= 1.0:
                self.status, self._completed_at = "BUILDING_COMPLETED", now
                self.nozzle.target = self.bed.target = 0
        elif (
            self.status == "BUILDING_COMPLETED"
            and now - self._completed_at >= self.completed_hold_s
        ):
            self.status = "READY"

    def start_print(self, job: PrintJob) -> None:
        """Start a job from the beginning (heating first, then progress)."""
        self.advance()
        self.job, self.done, self.status = job, 0.0, "BUILDING_FROM_SD"
        self.nozzle.target, self.bed.target = job.nozzle_c, job.bed_c

    def pause(self) -> bool:
        """Pause a running print; False when there is none."""
        self.advance()
        if self.status != "BUILDING_FROM_SD":
            return False
        self.status = "PAUSED"
        return True

    def resume(self) -> bool:
        """Resume a paused print; False when not paused."""
        self.advance()
        if self.status != "PAUSED":
            return False
        self.status = "BUILDING_FROM_SD"
        return True

    def cancel(self) -> bool:
        """Stop a running or paused print; False when there is none."""
        self.advance()
        if self.status not in ("BUILDING_FROM_SD", "PAUSED"):
            return False
        self.status = "READY"
        self.nozzle.target = self.bed.target = 0
        return True

    def disconnect(self, conn: int) -> None:
        """A connection closed: the control it held is released."""
        if self.controller == conn:
            self.controller = None

    @property
    def progress(self) -> tuple[int, int]:
        """What M27 reports: percent of the current or last job, out of 100."""
        return (math.floor(self.done * 100), 100)

    # ------------------------------------------------------------------ protocol

    def handle(self, conn: int, line: str) -> list[str] | None:
        """The reply lines (header and ok included) to one request, or None to stay silent."""
        words = line.strip().lstrip("~").split()
        if not line.strip().startswith("~") or not words:
            return None
        code, args = words[0].upper(), words[1:]
        self.advance()
        ignored = code in _ACTIONS and not self._may_act(conn)
        payload = [] if ignored else self._payload(conn, code, args)
        return [f"CMD {code} Received.", *payload, "ok"]

    def _may_act(self, conn: int) -> bool:
        if self.foreign_control or (self.controller is not None and self.controller != conn):
            return False
        return not self.control_required or self.controller == conn

    def _payload(self, conn: int, code: str, args: list[str]) -> list[str]:  # noqa: C901 - one branch per code
        if code == "M601":
            if self.foreign_control or self.controller not in (None, conn):
                return ["Control failed."]
            self.controller = conn
            return ["Error: have been connected" if self.lingering_session else "Control Success."]
        if code == "M602":
            self.disconnect(conn)
            return ["Control Release."]
        if code == "M115":
            return self._m115()
        if code == "M105":
            return [
                f"T0:{round(self.nozzle.current)} /{self.nozzle.target} "
                f"B:{round(self.bed.current)}/{self.bed.target}"
            ]
        if code == "M27":
            done, total = self.progress
            return [f"SD printing byte {done}/{total}"]
        if code == "M119":
            return self._m119()
        if code == "M114":
            return ["X:79.9981 Y:50.0002 Z:77.9001 A:0 B:0"]
        if code == "M650":
            return ["X: 1.0 Y: 0.5"]
        if code == "M25":
            self.pause()
        elif code == "M24":
            self.resume()
        elif code in ("M26", "M112"):
            self.cancel()
        elif code in ("M104", "M140"):
            self._set_target(self.nozzle if code == "M104" else self.bed, args)
        elif code == "M146":
            self.led = any(a[:1] in "rgb" and a[1:] not in ("", "0") for a in args)
        elif code == "M23":
            return self._m23(args)
        return []

    def _set_target(self, heater: Heater, args: list[str]) -> None:
        for arg in args:
            match = _INTEGER_S.match(arg)
            if match:
                heater.target = int(match[1])

    def _m23(self, args: list[str]) -> list[str]:
        path = " ".join(args)
        name = path.rsplit("/", 1)[-1] or "unnamed.gx"
        job = PrintJob(file=name)
        if self.status not in ("BUILDING_FROM_SD", "PAUSED"):
            self.start_print(job)
        return [f"File opened: {name} Size: {job.size_bytes}", "File selected"]

    def _m115(self) -> list[str]:
        # The REX ends the MAC line with a bare LF and then sends an empty CRLF line.
        return [
            f"Machine Type: {self.machine_type}",
            f"Machine Name: {self.name}",
            f"Firmware: {self.firmware}",
            f"SN: {self.serial}",
            "X: 150 Y: 150 Z: 150",
            "Tool Count: 1",
            f"Mac Address: {self.mac}\n",
        ]

    def _m119(self) -> list[str]:
        machine, move = {
            "READY": ("READY", "READY"),
            "BUILDING_FROM_SD": ("BUILDING_FROM_SD", "MOVING"),
            "BUILDING_COMPLETED": ("BUILDING_COMPLETED", "READY"),
            "PAUSED": (
                ("PAUSED", "PAUSED")
                if self.pause_style == "machine_status"
                else ("BUILDING_FROM_SD", "PAUSED")
            ),
        }[self.status]
        current = self.job.file if self.job and self.status != "READY" else ""
        return [
            "Endstop: X-max:1 Y-max:0 Z-max:0",
            f"MachineStatus: {machine}",
            f"MoveMode: {move}",
            "Status: S:1 L:0 J:0 F:0",
            f"LED: {int(self.led)}",
            f"CurrentFile: {current}",
        ]

    def truth(self) -> dict[str, object]:
        """What the printer really is now, for tests to compare a client's reading with."""
        self.advance()
        return {
            "status": self.status,
            "file": self.job.file if self.job else None,
            "progress": self.progress,
            "nozzle": (self.nozzle.current, self.nozzle.target),
            "bed": (self.bed.current, self.bed.target),
            "led": self.led,
            "controller": self.controller,
        }
