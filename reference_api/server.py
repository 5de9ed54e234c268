"""``printer-gateway api``: serve the reference API with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from reference_api.store import Store

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger(__name__)
RETENTION_EVERY_S = 60.0
Policy = tuple[float, float, float | None]  # full_rate_s, step_s, history_s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the api verb's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--db", type=Path, default=Path("printer-gateway-api.db"), help="SQLite file"
    )
    parser.add_argument(
        "--full-rate-hours",
        type=float,
        default=24.0,
        help="keep every status for the charts this long, then one per --history-step-s",
    )
    parser.add_argument(
        "--history-step-s",
        type=float,
        default=60.0,
        help="one status per printer per this many seconds in the long-term history",
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=None,
        help="drop history older than this (default: keep it; about 50 bytes a minute a printer)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file with the bearer token (default $PRINTER_GATEWAY_TOKEN)",
    )


def build_server(store: Store, token: str, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (run it with ``server.run()`` or ``await server.serve()``)."""
    import uvicorn  # here, not at import: every CLI start registers this verb's options

    from reference_api.app import create_app

    config = uvicorn.Config(
        create_app(store, token),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,  # long polls must not hold a shutdown for a minute
    )
    return uvicorn.Server(config)


def api_token(args: argparse.Namespace) -> str:
    """The bearer token: ``--token-file``, else $PRINTER_GATEWAY_TOKEN ("" when neither)."""
    if args.token_file is not None:
        return str(args.token_file.read_text(encoding="utf-8").strip())
    return os.environ.get("PRINTER_GATEWAY_TOKEN", "").strip()


class RetentionThread(threading.Thread):
    """Runs the store's retention every minute on a connection of its own (a pass is many
    short transactions; the server's requests interleave with them)."""

    def __init__(self, db: Path, policy: Policy) -> None:
        super().__init__(name="retention", daemon=True)
        self.db, self.policy = db, policy
        self.stopping = threading.Event()

    def run(self) -> None:
        store = Store(self.db)
        try:
            while not self.stopping.is_set():
                try:
                    while not self.stopping.is_set() and any(
                        msgspec.structs.astuple(store.retain(time.time(), *self.policy))
                    ):
                        pass  # more to do: the next bounded pass at once
                except sqlite3.Error as err:  # a busy or full disk: try again next minute
                    logger.warning("retention pass failed: %s", err)
                self.stopping.wait(RETENTION_EVERY_S)
        finally:
            store.close()


def policy_of(args: argparse.Namespace) -> Policy:
    """(full_rate_s, step_s, history_s) from the command line; ValueError when nonsense."""
    if not args.full_rate_hours > 0 or not args.history_step_s > 0:
        raise ValueError("--full-rate-hours and --history-step-s must be above 0")
    if args.history_days is not None and not args.history_days > 0:
        raise ValueError("--history-days must be above 0")
    history_s = None if args.history_days is None else args.history_days * 86400.0
    return (args.full_rate_hours * 3600.0, args.history_step_s, history_s)


def run(args: argparse.Namespace, token: str) -> int:
    """Serve until stopped."""
    store = Store(args.db)
    retention = RetentionThread(args.db, policy_of(args))
    retention.start()
    try:
        server = build_server(store, token, args.host, args.port)
        logger.info("reference API on http://%s:%d (database %s)", args.host, args.port, args.db)
        server.run()
    finally:
        retention.stopping.set()
        retention.join(timeout=10)
        store.close()
    return 0
