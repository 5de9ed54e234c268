"""Logging set-up shared by every entry point: one line per record, to stderr, made safe.

Every message passes through ``gateway.redaction.safe``: registered secrets and
credential-shaped values are redacted (a line holding a secret in a form that cannot be cut
out is withheld) and control characters escaped, so a command id, a file name or a server's
answer can neither leak the token nor forge a log line (about 0.1 ms a line here; the
services log state changes, not polls). Tracebacks and stacks keep
their lines, each redacted, escaped and prefixed with ``| ``: an exception message that
quotes a printer or a server can add lines, but never one that looks like a record.
"""

from __future__ import annotations

import logging

from gateway.redaction import safe


class SafeFormatter(logging.Formatter):
    """A formatter whose messages are one redacted line and whose tracebacks are redacted."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = safe(record.message, limit=None)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _quoted(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _quoted(super().formatStack(stack_info))


def _quoted(block: str) -> str:
    return "\n".join(f"| {safe(line, limit=None)}" for line in block.splitlines())


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (supervisord captures and rotates it); DEBUG with verbose."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
