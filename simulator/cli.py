"""``printer-gateway sim``: run the printer simulator from the command line, optionally scripted.

``--at SECONDS:ACTION`` schedules a step relative to start, e.g. ``--at 20:pause``,
``--at 30:resume``, ``--at 40:power_off`` (connects time out; ``power_refuse``: refused),
``--at 50:power_on``, ``--at 5:split_bytes=true``, ``--at 60:foreign_control=true``.
``--fault NAME=VALUE`` sets a fault switch from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from gateway.files import write_atomically
from simulator.camera import start_camera
from simulator.discovery import start_responder
from simulator.model import PrinterModel, PrintJob
from simulator.server import Faults, PrinterSimulator

logger = logging.getLogger(__name__)
_MODEL_SWITCHES = ("foreign_control", "control_required")
_STEPS = ("pause", "resume", "cancel", "print", "power_off", "power_refuse", "power_on")


def _form(node: mi.Type) -> str:
    """The values a fault switch takes, in words for ``--help`` and errors."""
    if isinstance(node, mi.BoolType):
        return "[=true | false]"  # the name alone turns it on
    if isinstance(node, mi.LiteralType):
        return "=" + " | ".join(str(value) for value in node.values)
    if isinstance(node, mi.FloatType | mi.IntType):
        low = "" if node.ge is None else node.ge
        high = "" if node.le is None else node.le
        return f"={low}..{high}"
    return f"={type(node).__name__}"


def fault_forms() -> list[str]:
    """``NAME=VALUES`` for every fault switch, read from ``Faults`` itself (one source of
    truth for ``--help``, the error a bad ``--fault`` gets, and the simulator)."""
    info = mi.type_info(Faults)
    assert isinstance(info, mi.StructType)
    return [f"{field.name}{_form(field.type)}" for field in info.fields]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sim verb's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8899, help="TCP port; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    parser.add_argument("--name", default="REX II Sim", help="M115 machine name")
    parser.add_argument(
        "--discovery-port",
        type=int,
        metavar="PORT",
        help="also answer UDP discovery probes on this port (0 picks a free one)",
    )
    parser.add_argument(
        "--camera-port",
        type=int,
        metavar="PORT",
        help="also serve an MJPEG camera (/?action=stream) on this HTTP port (0 picks one)",
    )
    parser.add_argument("--print", dest="print_file", metavar="FILE", help="start printing FILE")
    parser.add_argument("--print-duration", type=float, default=600.0, metavar="S")
    parser.add_argument(
        "--pause-style", choices=["machine_status", "move_mode"], default="machine_status"
    )
    parser.add_argument("--completed-hold", type=float, default=10.0, metavar="S")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a fault switch from the start (repeatable): {'; '.join(fault_forms())}",
    )
    parser.add_argument(
        "--at",
        action="append",
        default=[],
        metavar="SECONDS:ACTION",
        help="a step SECONDS after the start (repeatable), ACTION one of "
        f"{', '.join(s for s in _STEPS if s != 'print')}, print[=FILE], "
        f"{', '.join(f'{switch}=true | false' for switch in _MODEL_SWITCHES)}, "
        "or a fault as for --fault (e.g. 20:pause, 40:power_off, 60:reply_delay_s=3)",
    )
    parser.add_argument("--report-every", type=float, default=0.0, metavar="S", help="log state")
    parser.add_argument(
        "--for", dest="run_for", type=float, default=0.0, metavar="S", help="then exit"
    )


def _value(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _parse_step(spec: str) -> tuple[float, str, Any]:
    when, sep, action = spec.partition(":")
    name, _, value = action.partition("=")
    if not sep or name not in (*_STEPS, *_MODEL_SWITCHES, *Faults.__struct_fields__):
        raise ValueError(
            f"bad --at step {spec!r}: want SECONDS:ACTION with ACTION one of "
            f"{', '.join((*_STEPS, *_MODEL_SWITCHES, *Faults.__struct_fields__))}"
        )
    return float(when), name, _value(value) if value else None


def _apply(sim: PrinterSimulator, name: str, value: Any, job: PrintJob) -> None:
    model = sim.model
    if name == "pause":
        model.pause()
    elif name == "resume":
        model.resume()
    elif name == "cancel":
        model.cancel()
    elif name == "print":
        model.start_print(dataclasses.replace(job, file=str(value or job.file)))
    elif name in _MODEL_SWITCHES:
        setattr(model, name, bool(value))
    else:
        sim.set_faults(**{name: True if value is None else value})
    logger.info("sim step: %s%s", name, "" if value is None else f"={value}")


async def _serve(args: argparse.Namespace, steps: list[tuple[float, str, Any]]) -> None:
    model = PrinterModel(
        name=args.name, pause_style=args.pause_style, completed_hold_s=args.completed_hold
    )
    sim = PrinterSimulator(model, host=args.host, port=args.port)
    for fault in args.fault:
        name, _, value = fault.partition("=")
        sim.set_faults(**{name: _value(value) if value else True})
    job = PrintJob(file=args.print_file or "benchy.gx", duration_s=args.print_duration)
    if args.print_file:
        model.start_print(job)
    port = await sim.start()
    if args.port_file:  # written whole before anyone is told the port
        write_atomically(args.port_file, f"{port}\n".encode())
    print(f"printer simulator listening on {args.host}:{port}", flush=True)
    extras = await _start_extras(args, model, sim)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = loop.time()
    pending = sorted(steps, key=lambda step: step[0])
    next_report = started + args.report_every
    while not stop.is_set():
        now = loop.time()
        while pending and now - started >= pending[0][0]:
            _, name, value = pending.pop(0)
            if name.startswith("power_"):
                if name == "power_on":
                    await sim.power_on()
                else:  # power_off: connects time out; power_refuse: connects refused
                    await sim.power_off(refuse=name == "power_refuse")
                logger.info("sim step: %s", name)
            else:
                _apply(sim, name, value, job)
        if args.report_every and now >= next_report:
            next_report = now + args.report_every
            logger.info("sim state: %s", model.truth())
        if args.run_for and now - started >= args.run_for:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    for extra in extras:
        extra.close()
    await sim.stop()


async def _start_extras(
    args: argparse.Namespace, model: PrinterModel, sim: PrinterSimulator
) -> list[asyncio.BaseTransport | asyncio.Server]:
    """Discovery and the camera, when asked for; what to close at the end."""
    extras: list[asyncio.BaseTransport | asyncio.Server] = []
    if args.discovery_port is not None:
        discovery, bound = await start_responder(
            model, args.host, args.discovery_port, lambda: sim.port
        )
        extras.append(discovery)
        print(f"printer simulator answering discovery on {args.host}:{bound}/udp", flush=True)
    if args.camera_port is not None:
        camera, bound = await start_camera(args.host, args.camera_port)
        extras.append(camera)
        print(f"printer simulator camera on http://{args.host}:{bound}/?action=stream", flush=True)
    return extras


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM (or ``--for`` seconds); 2 on bad arguments."""
    try:
        steps = [_parse_step(spec) for spec in args.at]
        for fault in args.fault:
            name, _, value = fault.partition("=")
            msgspec.convert({name: _value(value) if value else True}, Faults)
    except (ValueError, msgspec.ValidationError) as err:
        forms = "; ".join(fault_forms())
        print(f"printer-gateway sim: {err} (fault names: {forms})", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, steps))
    except OSError as err:
        print(
            f"printer-gateway sim: cannot listen on {args.host}:{args.port}: {err.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0
