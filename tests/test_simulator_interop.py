"""The simulator read by an independent FlashForge client library (ffpp, the Home Assistant
integration's library), compared with the simulator's own truth.

ffpp's nozzle regex wants ``T0:27/0`` and so cannot read the REX's ``T0:27 /0`` (the space
before the slash is in the REX captures; modrzew/hass-flashforge-adventurer-3 issue #2 is the
same problem). The test pins that down instead of bending the simulator away from the capture.
"""

from __future__ import annotations

import asyncio

from ffpp.Printer import Printer  # type: ignore[import-untyped]

from simulator import PrintJob, SimulatorThread


async def _read(port: int) -> Printer:
    printer = Printer("127.0.0.1", port)
    await printer.connect()  # M115, then M119 + M105 + M27 on the same socket, then close
    return printer


def test_ffpp_reads_identity_status_file_progress_and_bed(sim: SimulatorThread) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="interop.gx", duration_s=600)))
    printer = asyncio.run(_read(sim.port))
    truth = sim.truth()
    assert printer.machine_type == "FlashForge Adventurer III"
    assert printer.machine_name == "REX II Sim"
    assert printer.firmware == "v2.2.1"
    assert printer.serial == "SNSIM0000001"
    assert (printer.maxX, printer.maxY, printer.maxZ) == ("150", "150", "150")
    assert printer.mac_address == "88:A9:A7:00:00:01"
    assert (printer.machine_status, printer.move_mode) == ("BUILDING_FROM_SD", "MOVING")
    assert truth["status"] == "BUILDING_FROM_SD"
    assert printer.job_file == truth["file"] == "interop.gx"
    assert int(printer.print_percent) == truth["progress"][0]  # type: ignore[index]
    bed = printer.bed_tools.get("B")
    assert bed.target == truth["bed"][1] == 60  # type: ignore[index]
    assert abs(bed.now - truth["bed"][0]) <= 40  # type: ignore[index]  # heating between reads
    assert (
        printer.extruder_tools.get("T0") is None
    )  # "T0:22 /210": ffpp's regex misses the REX form


def test_ffpp_sees_pause_and_ready(sim: SimulatorThread) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="interop.gx", duration_s=600)))
    sim.call(sim.sim.model.pause)
    printer = asyncio.run(_read(sim.port))
    assert (printer.machine_status, printer.move_mode) == ("PAUSED", "PAUSED")
    assert printer.job_file == "interop.gx"
    sim.call(sim.sim.model.cancel)
    printer = asyncio.run(_read(sim.port))
    assert (printer.machine_status, printer.job_file) == ("READY", "")
    assert sim.truth()["status"] == "READY"
