"""``printer-gateway up`` (supervisord in the foreground) and ``printer-gateway status``."""

from __future__ import annotations

import dataclasses
import http.client
import os
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

import msgspec
from supervisor.xmlrpc import SupervisorTransport

from gateway.config import CONFIG_ENV, Config
from gateway.files import private_dir
from gateway.health import (
    PrinterHealth,
    read_bridge,
    read_printers,
    read_problems,
    reset_starts,
    starts,
)
from gateway.layout import LOG_DIR_ENV, Layout
from gateway.locks import AlreadyRunning, hold, holder
from gateway.redaction import redact, safe
from services.uplink.live import read_snapshot
from services.uplink.queue import read_stats

STALLED_QUEUE_S = 300.0


def bundled_conf() -> Path:
    """The repository's ``supervisord.conf``."""
    return Path(__file__).resolve().parents[1] / "supervisord.conf"


def supervisor_environment(config_path: Path, config: Config) -> dict[str, str]:
    """The environment supervisord.conf expects, with this Python's scripts first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    layout = Layout.of(config)
    return {
        **os.environ,
        CONFIG_ENV: str(config_path.resolve()),
        "PRINTER_GATEWAY_RUNTIME_DIR": str(layout.runtime_dir),
        LOG_DIR_ENV: str(layout.log_dir),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def prepare_dirs(config: Config) -> list[str]:
    """Create data, runtime and log directories owner-only (an existing one keeps its mode);
    returns a warning for each that other users can reach."""
    warnings = []
    layout = Layout.of(config)
    for folder in (layout.data_dir, layout.runtime_dir, layout.log_dir):
        if private_dir(folder):
            warnings.append(
                f"{folder} is accessible to other users: the gateway's files in it are "
                "owner-only, but a directory of its own (mode 700) is safer"
            )
    return warnings


def supervisord_command() -> list[str]:
    """supervisord from this Python's environment, in the foreground, on the bundled conf."""
    return [str(Path(sys.executable).parent / "supervisord"), "-n", "-c", str(bundled_conf())]


def summary(config: Config) -> str:
    """The one line `up` says about what it runs."""
    layout = Layout.of(config)
    printers = ", ".join(f"{p.id} ({p.host}:{p.port})" for p in config.printers)
    extras = [
        *([f"MQTT {redact(config.mqtt.url)}"] if config.mqtt is not None else []),
        *([f"{len(config.notify.urls)} notification URL(s)"] if config.notify.urls else []),
    ]
    return (
        f"printer-gateway: watching {printers}; delivering to {redact(config.api.url)}"
        + (f"; {', '.join(extras)}" if extras else "")
        + f"\nlogs in {layout.log_dir}; `printer-gateway status` says how it goes; Ctrl-C stops all"
    )


def up(config_path: Path, config: Config) -> int:
    """Replace this process by supervisord (Ctrl-C or SIGTERM stops every service cleanly);
    the directories must exist (``prepare_dirs``). One gateway per data directory: the lock
    is held by supervisord itself (the descriptor survives the exec), so it lasts exactly
    as long as the gateway; 2 when another holds it. supervisord's own chatter goes to its
    log, not to this terminal: nothing it writes can fail on a closed pipe (``up | tee``
    interrupted) and leave it dead with its services running."""
    layout = Layout.of(config)
    try:
        lock = hold(layout.gateway_lock, f"a gateway on {layout.data_dir}")
    except AlreadyRunning as err:
        print(f"printer-gateway up: {err}: `printer-gateway status` shows it", file=sys.stderr)
        return 2
    os.set_inheritable(lock, True)
    reset_starts(layout)
    print(summary(config), flush=True)
    output = os.open(
        layout.log_dir / "supervisord.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
    )
    os.dup2(output, 1)
    os.dup2(output, 2)
    command = supervisord_command()
    os.execve(command[0], command, supervisor_environment(config_path, config))
    return 0  # not reached: execve does not return


@dataclasses.dataclass(frozen=True)
class ServiceHealth:
    """One supervisord program (a process) as supervisord reports it, and the services it
    runs (the bundled conf runs the uplink and control in the `uplink` program)."""

    name: str
    running: bool
    state: str
    uptime_s: float | None
    restarts: int
    services: list[str]


def supervisor_call(layout: Layout, method: str, *args: object) -> Any:
    """Call supervisord's XML-RPC interface over its unix socket (one connection, closed)."""
    transport = SupervisorTransport(None, None, f"unix://{layout.supervisor_socket}")
    try:
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return getattr(proxy.supervisor, method)(*args)
    finally:
        transport.close()


def services_health(config: Config) -> list[ServiceHealth] | None:
    """Each service's state from supervisord, or None when supervisord is not reachable."""
    layout = Layout.of(config)
    try:
        infos: list[dict[str, Any]] = supervisor_call(layout, "getAllProcessInfo")
    except (OSError, xmlrpc.client.Error, http.client.HTTPException):
        return None
    by_name = {info["name"]: info for info in infos}
    hosted: dict[int, list[str]] = {}  # each service's problems board names its process
    for board in read_problems(layout):
        hosted.setdefault(board.pid, []).append(board.service)
    result = []
    for name in sorted(by_name):
        info = by_name[name]
        running = info["statename"] == "RUNNING"
        uptime = float(info["now"] - info["start"]) if running else None
        result.append(
            ServiceHealth(
                name,
                running,
                info["statename"],
                uptime,
                max(0, starts(layout, name) - 1),
                sorted(hosted.get(info["pid"], [])) if running else [],
            )
        )
    return result


def status_report(config: Config) -> tuple[dict[str, Any], bool]:
    """Everything ``status`` shows, and whether the gateway is healthy."""
    layout = Layout.of(config)
    services = services_health(config)
    queue = read_stats(layout.queue_db)
    if queue is not None:  # the last error quotes the server: make it safe to show
        queue = dataclasses.replace(
            queue, last_error=None if queue.last_error is None else safe(queue.last_error)
        )
    printers = read_printers(layout)
    live = read_snapshot(layout.live_lane)
    bridge = read_bridge(layout) if config.mqtt is not None else None
    problems = []
    orphans = orphaned_services(layout) if services is None else {}
    if services is None:
        problems.append("supervisord not reachable (is `printer-gateway up` running?)")
        for pid, names in orphans.items():
            problems.append(
                f"{', '.join(names)} (pid {pid}) {'runs' if len(names) == 1 else 'run'} "
                f"without supervisord: an orphan; stop it with `kill {pid}`"
            )
    else:
        problems += [f"service {s.name} is {s.state}" for s in services if not s.running]
    for service in read_problems(layout):
        problems += [f"{service.service}: {p.reason} (since {p.since})" for p in service.problems]
    problems += unreachable_printers(config, printers)
    if queue is not None:
        if queue.oldest_age_s is not None and queue.oldest_age_s > STALLED_QUEUE_S:
            problems.append(
                f"oldest queued record is {queue.oldest_age_s:.0f} s old: delivery stalled"
            )
        if queue.dead:
            problems.append(
                f"{queue.dead} records in the dead-letter store, not delivered "
                "(`queue dead` shows them, `queue retry` sends them again)"
            )
    report = {
        "healthy": not problems,
        "problems": problems,
        "services": [dataclasses.asdict(s) for s in services or []],
        "orphans": [{"pid": pid, "services": names} for pid, names in orphans.items()],
        "printers": [msgspec.structs.asdict(p) for p in printers],
        "queue": None if queue is None else dataclasses.asdict(queue),
        "live": None if live is None else msgspec.structs.asdict(live.stats),
        "mqtt": None if bridge is None else msgspec.structs.asdict(bridge),
    }
    return report, not problems


def orphaned_services(layout: Layout) -> dict[int, list[str]]:
    """Services still running while supervisord is not (it died, or they were started by
    hand): the live holders of service locks, by pid, when nobody holds the gateway lock
    (while supervisord holds it, it may only be slow to answer). The locks are probed,
    never taken (``locks.holder``)."""
    if holder(layout.gateway_lock) is not None:
        return {}
    found: dict[int, list[str]] = {}
    for service, path in layout.service_locks().items():
        pid = holder(path)
        if pid:  # 0: held, its pid not written yet (a service starting this instant)
            found.setdefault(pid, []).append(service)
    return found


def unreachable_printers(config: Config, printers: list[PrinterHealth]) -> list[str]:
    """A printer the poller reports offline is a problem: it says so only after its retries
    failed (a few probes), so this is not a blip. What to check comes with it."""
    by_id = {p.id: p for p in config.printers}
    found = []
    for health in printers:
        printer = by_id.get(health.printer_id)
        if health.state != "offline" or printer is None:
            continue
        since = f"last contact {health.last_contact}" if health.last_contact else "never reached"
        found.append(
            f"printer {health.printer_id} is unreachable at {printer.host}:{printer.port} "
            f"({since}): is it on, on this network, and is that its address? "
            "(`printer-gateway discover` finds it)"
        )
    return found


def format_report(report: dict[str, Any]) -> str:
    """The human view of a status report."""
    lines = [f"gateway: {'healthy' if report['healthy'] else 'UNHEALTHY'}"]
    lines += [f"  ! {problem}" for problem in report["problems"]]
    lines.append("services:")
    for s in report["services"]:
        uptime = f"up {s['uptime_s']:.0f} s" if s["uptime_s"] is not None else "down"
        runs = f"  runs {', '.join(s['services'])}" if s["services"] else ""
        lines.append(
            f"  {s['name']:<10} {s['state']:<10} {uptime:<14} restarts {s['restarts']}{runs}"
        )
    running = bool(report["services"])
    lines.append("printers:" if running else "printers (as last seen; the gateway is not running):")
    for p in report["printers"]:
        lease = "lease held" if p["lease_held"] else "no lease"
        contact = p["last_contact"] or "never"
        lines.append(f"  {p['printer_id']:<10} {p['state']:<22} {lease:<11} last contact {contact}")
        if p.get("connects_last_minute") is not None:
            count = p["connects_last_minute"]
            lines.append(
                f"    {count} connection attempt{'' if count == 1 else 's'} in the last minute"
            )
        if p.get("detail"):
            lines.append(f"    {p['detail']}")
    live = report.get("live")
    if live is not None:
        delivered = live["last_delivery"] or "never"
        lines.append(
            f"live lane (statuses from memory): {live['waiting']} waiting, "
            f"{live['delivered']} delivered, {live['spilled']} kept on disk and "
            f"{live['dropped_by_downsampling']} skipped while the API was not keeping up"
            + (
                f", {live['dropped_no_room']} given up with the disk full"
                if live.get("dropped_no_room")
                else ""
            )
            + "; "
            f"last delivery {delivered}"
        )
    mqtt = report.get("mqtt")
    if mqtt is not None:
        connection = f"connected since {mqtt['since']}" if mqtt["connected"] else "NOT connected"
        lines.append(
            f"mqtt: {mqtt['broker']} {connection}; {mqtt['published']} messages published, "
            f"{mqtt['commands']} commands taken"
        )
    queue = report["queue"]
    if queue is None:
        lines.append("queue: none yet")
    else:
        depth = sum(queue["depth_by_kind"].values())
        age = "-" if queue["oldest_age_s"] is None else f"{queue['oldest_age_s']:.0f} s"
        lines.append(
            f"queue (on disk: events, results, spilled statuses): {depth} records, oldest "
            f"{age}, {queue['dead']} dead letters, {queue['dropped_status']} statuses dropped"
        )
        delivered, error = queue["last_delivery"] or "never", queue["last_error"] or "none"
        lines.append(f"  last delivery {delivered}; last error {error}")
    return "\n".join(lines)
