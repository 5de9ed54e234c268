"""``printer-gateway api``: serve the reference API with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from reference_api.store import Store

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the api verb's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--db", type=Path, default=Path("printer-gateway-api.db"), help="SQLite file"
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


def run(args: argparse.Namespace, token: str) -> int:
    """Serve until stopped."""
    store = Store(args.db)
    try:
        server = build_server(store, token, args.host, args.port)
        logger.info("reference API on http://%s:%d (database %s)", args.host, args.port, args.db)
        server.run()
    finally:
        store.close()
    return 0
