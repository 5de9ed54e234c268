"""Logging set-up shared by every entry point: one line per record, to stderr, made safe.

Every message passes through ``gateway.redaction``: registered secrets and credential-shaped
values are redacted and control characters escaped, so a command id, a file name or a
server's answer can neither leak the token nor forge a log line. Tracebacks and stacks keep
their lines, each redacted, escaped and prefixed with ``| ``: an exception message that
quotes a printer or a server can add lines, but never one that looks like a record.
"""

from __future__ import annotations

import logging

from gateway.redaction import WITHHELD, escape, redact, reveals_secret


class SafeFormatter(logging.Formatter):
    """A formatter whose messages are one redacted line and whose tracebacks are redacted."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = redact(record.message)
        record.message = WITHHELD if reveals_secret(message) else escape(message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _quoted(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _quoted(super().formatStack(stack_info))


def _quoted(block: str) -> str:
    lines = [redact(line) for line in block.splitlines()]
    return "\n".join(f"| {WITHHELD if reveals_secret(x) else escape(x)}" for x in lines)


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (supervisord captures and rotates it); DEBUG with verbose."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
