"""Logging set-up shared by every entry point: one line per record, to stderr."""

from __future__ import annotations

import logging


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (supervisord captures and rotates it); DEBUG with verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
