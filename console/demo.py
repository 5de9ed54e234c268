"""``printer-gateway demo``: the whole gateway against a simulated printer and the reference
API, in a temporary directory, with no set-up. Follows the print in the terminal; Ctrl-C
(or ``--duration``) stops everything and says how many records reached the API."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from console import demo_broker
from gateway.config import load_config
from gateway.layout import Layout
from simulator import PrinterModel, PrinterSimulator, PrintJob, SimulatorThread
from simulator.camera import CameraThread


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo verb's options."""
    parser.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--print-duration", type=float, default=240.0, metavar="S", help="length of the print"
    )
    parser.add_argument(
        "--api-port", type=int, default=0, help="reference API port (0: a free one)"
    )


def free_port() -> int:
    """A TCP port free on loopback right now (for the demo's and benchmarks' own servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(
    root: Path, api_url: str, printer_port: int, camera_url: str, mqtt_url: str | None
) -> Path:
    path = root / "gateway.toml"
    path.write_text(
        "# written by `printer-gateway demo`\n"
        f'[gateway]\nid = "demo"\ndata_dir = "{root}/data"\nruntime_dir = "{root}/run"\n'
        f'[api]\nurl = "{api_url}"\ntoken_file = "{root}/token"\n'
        f'[[printers]]\nid = "rex1"\nname = "REX II (simulated)"\nhost = "127.0.0.1"\n'
        f"port = {printer_port}\n"
        "probe_interval_s = 5\npoll_interval_s = 1\n"
        f'camera_url = "{camera_url}"\n' + (f'[mqtt]\nurl = "{mqtt_url}"\n' if mqtt_url else "")
    )
    return path


def _bar(fraction: float, width: int = 30) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "#" * filled + "-" * (width - filled)


def _line(printer: dict[str, Any]) -> str:
    nozzle, bed = printer.get("nozzle") or {}, printer.get("bed") or {}
    percent = printer.get("progress_percent") or 0.0
    return (
        f"{printer['state']:<9} [{_bar(percent / 100)}] {percent:5.1f}%  "
        f"nozzle {nozzle.get('current', 0):5.1f}/{nozzle.get('target', 0):3.0f} °C  "
        f"bed {bed.get('current', 0):4.1f}/{bed.get('target', 0):3.0f} °C  "
        f"{printer.get('file') or ''}"
    )


def _stop(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP (a closed terminal, a dropped ssh) end the demo as Ctrl-C does:
    through its clean-up, so nothing it started outlives it."""
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when records reached the API."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    token = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="printer-gateway-demo-") as tmp:
        root = Path(tmp)
        (root / "token").write_text(token)
        os.chmod(root / "token", 0o600)
        model = PrinterModel(name="REX II (simulated)")
        model.nozzle.tau_s, model.bed.tau_s = 4.0, 6.0  # a demo heats up a little faster
        with SimulatorThread(PrinterSimulator(model)) as sim, CameraThread() as camera:
            sim.call(
                lambda: model.start_print(
                    PrintJob(file="benchy.gx", duration_s=args.print_duration)
                )
            )
            api_port = args.api_port or free_port()
            api_url = f"http://127.0.0.1:{api_port}"
            mqtt_port = free_port()
            broker = demo_broker.start(root, mqtt_port)
            mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}" if broker else None
            config_path = _write_config(root, api_url, sim.port, camera.url, mqtt_url)
            config = load_config(config_path)
            env = {**os.environ, "PRINTER_GATEWAY_TOKEN": token}
            cli = [sys.executable, "-m", "console.cli"]
            log = (root / "demo.log").open("ab")
            api = subprocess.Popen(
                [*cli, "api", "--port", str(api_port), "--db", str(root / "api.db")],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            gateway = subprocess.Popen(
                [*cli, "--config", str(config_path), "up"],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            print(f"simulated printer on 127.0.0.1:{sim.port}, printing benchy.gx")
            print(f"web page: {api_url}/ui/demo#token={token}")
            print(f"reference API on {api_url}  (token in {root / 'token'})")
            bearer = f'-H "Authorization: Bearer $(cat {root / "token"})"'
            print(f"  printers: curl {bearer} '{api_url}/v1/printers?gateway_id=demo'")
            print(f"  records:  curl {bearer} '{api_url}/v1/records?gateway_id=demo'")
            logs = Layout.of(config).log_dir
            print(f"gateway under supervisord, logs in {logs}; Ctrl-C stops all")
            if broker is not None:
                print(
                    f"MQTT: mosquitto on 127.0.0.1:{mqtt_port}, Home Assistant discovery on; "
                    f"watch it (mosquitto-clients): mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -v "
                    "-t 'printer-gateway/#' -t 'homeassistant/#'"
                )
            else:
                print("MQTT: no mosquitto here (apt-get install mosquitto), so no bridge")
            command = Path(sys.executable).parent / "printer-gateway"
            print(
                f"its config: {config_path}; while it runs, try "
                f"`{command} --config {config_path} status` (or jobs, tap, "
                "check-config --connect)"
            )
            delivered = 0
            try:
                delivered = _follow(api_url, token, args.duration)
            except KeyboardInterrupt:
                print()
            finally:
                for process in (gateway, api):
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                for process in (gateway, api):
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                if broker is not None:  # after the gateway: its last "offline" goes out
                    broker.terminate()
                    broker.wait(10)
                log.close()
                del config
            print(f"records delivered: {delivered}")
            if delivered > 0:
                return 0
            kept = Path(tempfile.mkdtemp(prefix="printer-gateway-demo-failed-"))
            shutil.copytree(root, kept, dirs_exist_ok=True, ignore=_sockets)
            print(f"nothing reached the API: the demo's files and logs are kept in {kept}")
            return 1


def _sockets(folder: str, names: list[str]) -> set[str]:
    """What a copy of the demo's folder leaves out: ipc sockets and the like."""
    return {
        name
        for name in names
        if not (Path(folder) / name).is_file() and not (Path(folder) / name).is_dir()
    }


def _follow(api_url: str, token: str, duration_s: float) -> int:
    import requests  # here, not at import: every CLI start registers this verb's options

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    began = time.monotonic()
    delivered = ticks = 0
    interactive = sys.stdout.isatty()
    try:
        while not duration_s or time.monotonic() - began < duration_s:
            delivered, ticks = _tick(session, api_url, delivered, ticks, interactive)
    except KeyboardInterrupt:  # Ctrl-C is how a demo ends: what arrived still counts
        pass
    if interactive:
        print()
    return delivered


def _tick(
    session: Any, api_url: str, delivered: int, ticks: int, interactive: bool
) -> tuple[int, int]:
    """One look at the API and one line about it; (records delivered, ticks)."""
    import requests

    try:
        printers = session.get(
            f"{api_url}/v1/printers", params={"gateway_id": "demo"}, timeout=2
        ).json()["printers"]
        query: dict[str, str | int] = {"gateway_id": "demo", "limit": 100000}
        records = session.get(f"{api_url}/v1/records", params=query, timeout=5)
        delivered = len(records.json()["records"])
    except (requests.RequestException, ValueError, KeyError):
        printers = []
    text = _line(printers[0]) if printers else "waiting for the first status..."
    if interactive:
        print(f"\r{text}  [{delivered} records delivered]\033[K", end="", flush=True)
    elif ticks % 5 == 0:  # a log, not a live line, when nobody is watching a terminal
        print(f"{text}  [{delivered} records delivered]", flush=True)
    ticks += 1
    time.sleep(1.0)
    return delivered, ticks
