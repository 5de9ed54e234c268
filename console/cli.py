"""printer-gateway: watch and control networked 3D printers (VERB --help for each verb)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from console import demo as demo_cli
from gateway import __version__
from gateway.config import (
    Config,
    find_config_path,
    load_config,
    redacted,
    register_secrets,
    resolve_token,
    security_warnings,
)
from gateway.errors import ConfigError
from gateway.layout import check_socket_room
from gateway.logs import setup_logging
from simulator import cli as sim_cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb registered."""
    parser = argparse.ArgumentParser(prog="printer-gateway", description=__doc__)
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default $PRINTER_GATEWAY_CONFIG, else ./gateway.toml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("up", help="all services under supervisord, in the foreground")
    demo_cli.add_arguments(
        verbs.add_parser(
            "demo", help="the gateway against a simulated printer and the reference API"
        )
    )
    run = verbs.add_parser(
        "run", help="services in the foreground, in one process (what supervisord calls)"
    )
    run.add_argument(
        "service", nargs="+", choices=["poller", "uplink", "control", "bridge", "metrics"]
    )
    run.add_argument("--printer", metavar="ID", help="poller: only this printer")
    sim_cli.add_arguments(verbs.add_parser("sim", help="the printer simulator"))
    _add_api_arguments(verbs.add_parser("api", help="the reference API server"))
    status = verbs.add_parser("status", help="health of services, printers and the queue")
    status.add_argument("--json", action="store_true")
    queue = verbs.add_parser("queue", help="inspect and repair the durable queue")
    queue.add_argument("action", choices=["stats", "peek", "dead", "retry", "purge"])
    queue.add_argument("--yes", action="store_true", help="purge without asking")
    queue.add_argument("--limit", type=int, default=20, help="peek/dead: how many records")
    tap = verbs.add_parser("tap", help="print records live as the uplink accepts them")
    tap.add_argument("--json", action="store_true", help="one JSON record per line")
    tap.add_argument("--count", type=int, default=0, help="stop after this many records")
    check = verbs.add_parser(
        "check-config", help="validate the config and print the effective values"
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="also reach each printer (read-only), the API (with the token) and the broker",
    )
    check.add_argument("--timeout", type=float, default=5.0, help="--connect: seconds each")
    from console import jobs_tool  # small: the job record and a file reader

    jobs_tool.add_arguments(verbs.add_parser("jobs", help="the recent print jobs, newest first"))
    from console import discover  # only sockets and the wire format: cheap to import

    discover.add_arguments(
        verbs.add_parser("discover", help="find printers on the LAN; print [[printers]] blocks")
    )
    from console import setup  # what it checks with is imported when it checks

    setup.add_arguments(
        verbs.add_parser(
            "setup", help="find the printer, write the config and token, check, then start"
        )
    )
    return parser


def _config_error(path: Path, err: ConfigError) -> int:
    where = f" at {err.path}" if err.path else ""
    print(f"printer-gateway: config error in {path}{where}: {err.problem}", file=sys.stderr)
    return 2


def _add_api_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from reference_api import server
    except ImportError:  # the optional [api] extra is not installed
        return
    server.add_arguments(parser)


def run_api(args: argparse.Namespace) -> int:
    """``api``: the reference API server (needs the ``[api]`` extra)."""
    try:
        # reference_api.server imports uvicorn only when it serves (every CLI start reads
        # its options): ask for the extra's libraries here, before anything else.
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from reference_api import server
    except ImportError:
        print(
            "printer-gateway api: install the [api] extra: pip install 'printer-gateway[api]'",
            file=sys.stderr,
        )
        return 2
    try:
        token = server.api_token(args)
    except OSError as err:
        print(
            f"printer-gateway api: cannot read {args.token_file}: {err.strerror}", file=sys.stderr
        )
        return 2
    if not token:
        print(
            "printer-gateway api: no token: set PRINTER_GATEWAY_TOKEN or --token-file",
            file=sys.stderr,
        )
        return 2
    try:
        server.policy_of(args)
    except ValueError as err:
        print(f"printer-gateway api: {err}", file=sys.stderr)
        return 2
    return server.run(args, token)


def _check_notify(config: Config) -> None:
    """Every ``notify.urls`` entry must be one Apprise understands (ConfigError otherwise)."""
    from services.uplink.notify_child import apprise_for

    apprise_for(config)


def _config(
    args: argparse.Namespace, *, for_services: bool = False, notify: bool = False
) -> tuple[Path, Config]:
    """The config named by the command line; with `for_services` also a token (every service
    that talks to the API needs one); with `notify` also notification URLs Apprise
    understands (checked by the short-lived verbs only: a service that lives for months
    does not load Apprise, see services/uplink/notify_child.py). A ConfigError propagates
    to main, which reports it in one line and exits 2."""
    path = find_config_path(args.config)
    config = load_config(path)
    register_secrets(config)  # before anything can be logged or printed
    check_socket_room(config)
    if for_services:
        resolve_token(config)
    if notify:
        _check_notify(config)
    return path, config


def _warn(config: Config, path: Path) -> None:
    """Security warnings on stderr (they never stop anything)."""
    for warning in security_warnings(config, path):
        print(f"printer-gateway: warning: {warning}", file=sys.stderr)


def check_config(args: argparse.Namespace) -> int:
    """Print the effective config (token redacted); 2 naming the bad key if it is bad. With
    ``--connect``, reach the printers, the API and the broker instead: 1 if one fails."""
    path, config = _config(args, for_services=True, notify=True)
    _warn(config, path)
    if args.connect:
        from console import connection_check

        return connection_check.run(config, resolve_token(config), args.timeout)
    document = {
        "config_file": str(path.resolve()),
        "token": f"<redacted> (from {resolve_token(config).source})",
        **msgspec.structs.asdict(redacted(config)),
    }
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n")
    return 0


def run_service(args: argparse.Namespace) -> int:
    """``run SERVICE...``: these services in the foreground, in one process (architecture:
    the bundled supervisord.conf runs ``run uplink control`` to spare a Pi an interpreter)."""
    names = list(dict.fromkeys(args.service))  # `run uplink uplink` is one uplink
    if args.printer and "poller" not in names:
        print("printer-gateway: --printer is for the poller", file=sys.stderr)
        return 2
    # The poller, the bridge and the metrics never talk to the API: they need no token.
    needs_token = bool({"uplink", "control"} & set(names))
    _, config = _config(args, for_services=needs_token)
    token = resolve_token(config) if needs_token else None
    if args.printer:
        config.printer(args.printer)
    from gateway import runner
    from gateway.layout import Layout

    services = []
    for name in names:
        if name == "poller":
            from services.poller import service as poller_service

            services.append(poller_service.service(config, args.printer))
        elif name == "uplink":
            from services.uplink import service as uplink_service

            assert token is not None
            services.append(uplink_service.service(config, token))
        elif name == "control":
            from services.control import service as control_service

            assert token is not None
            services.append(control_service.service(config, token))
        elif name == "bridge":
            from services.bridge import service as bridge_service

            services.append(bridge_service.service(config))
        else:
            from services.metrics import service as metrics_service

            services.append(metrics_service.service(config))
    return runner.run(Layout.of(config), services)


def run_tool(args: argparse.Namespace) -> int:
    """``queue ...`` and ``tap``: tools on the uplink's queue and tap."""
    _, config = _config(args)
    from console import queue_tools as tools

    if args.verb == "tap":
        return tools.tap_command(config, args)
    return tools.queue_command(config, args)


def run_up(args: argparse.Namespace) -> int:
    """``up``: supervisord in the foreground for the config (never returns on success)."""
    path, config = _config(args, for_services=True, notify=True)
    from console import deploy

    for warning in [*security_warnings(config, path), *deploy.prepare_dirs(config)]:
        print(f"printer-gateway: warning: {warning}", file=sys.stderr)
    return deploy.up(path, config)


def run_status(args: argparse.Namespace) -> int:
    """``status``: services, printers, queue; exit 1 when something is unhealthy."""
    _, config = _config(args)
    from console import deploy

    report, healthy = deploy.status_report(config)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    else:
        print(deploy.format_report(report))
    return 0 if healthy else 1


def run_jobs(args: argparse.Namespace) -> int:
    """``jobs``: the recent print jobs this gateway recorded."""
    _, config = _config(args)
    from console import jobs_tool

    return jobs_tool.run(config, args)


def run_discover(args: argparse.Namespace) -> int:
    """``discover``: no config needed (it is how one starts a config)."""
    from console import discover

    return discover.run(args)


def run_setup(args: argparse.Namespace) -> int:
    from console import setup

    return setup.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "check-config": check_config,
        "sim": sim_cli.run,
        "run": run_service,
        "api": run_api,
        "queue": run_tool,
        "up": run_up,
        "status": run_status,
        "demo": demo_cli.run,
        "tap": run_tool,
        "discover": run_discover,
        "jobs": run_jobs,
        "setup": run_setup,
    }
    try:
        return handlers[args.verb](args)
    except ConfigError as err:
        return _config_error(find_config_path(args.config), err)


if __name__ == "__main__":
    sys.exit(main())
