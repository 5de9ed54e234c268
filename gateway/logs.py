"""Logging set-up shared by every entry point: one line per record, to stderr, made safe.

Every message passes through ``gateway.redaction``: registered secrets and credential-shaped
values are redacted and control characters escaped, so a command id, a file name or a
server's answer can neither leak the token nor forge a log line. Tracebacks keep their lines
but are redacted too.
"""

from __future__ import annotations

import logging

from gateway.redaction import escape, redact


class SafeFormatter(logging.Formatter):
    """A formatter whose messages are one redacted line and whose tracebacks are redacted."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(redact(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return redact(super().formatException(ei))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (supervisord captures and rotates it); DEBUG with verbose."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
