"""The project's exception hierarchy; boundaries translate foreign errors into these."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(GatewayError):
    """A configuration file is unreadable or invalid; `path` names the offending key."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class DiscoveryError(GatewayError):
    """A discovery datagram that is not a reply we can read; `raw` keeps it for logs."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class DatagramTooShortError(DiscoveryError):
    """Fewer bytes than the smallest reply format (140) holds."""


class DatagramTooLargeError(DiscoveryError):
    """More bytes than the largest reply format (276): not a discovery reply."""


class MalformedDatagramError(DiscoveryError):
    """A datagram of a plausible size whose fields do not make a reply."""


class PrinterProtocolError(GatewayError):
    """Bytes from the printer that do not form the expected reply; `raw` keeps them for logs."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class ReplyTooLargeError(PrinterProtocolError):
    """More bytes arrived for one reply than the size bound allows."""


class MalformedReplyError(PrinterProtocolError):
    """A framed reply whose structure is wrong (e.g. another reply interleaved inside it)."""


class UnexpectedPayloadError(PrinterProtocolError):
    """A complete reply whose payload a parser cannot read."""


class PrinterIOError(GatewayError):
    """The printer's socket failed; the subclass says how (it decides the reported state)."""


class PrinterUnreachableError(PrinterIOError):
    """No TCP connection could be made (connect timeout, no route): the printer is offline."""


class PrinterRefusedError(PrinterIOError):
    """The host answered but refused the connection: someone else has the printer."""


class PrinterTimeoutError(PrinterIOError):
    """Connected, but no complete reply in time (starved by another client, or hung)."""


class PrinterDisconnectedError(PrinterIOError):
    """The connection was closed or reset under us."""


class PrinterTurnedAwayError(PrinterDisconnectedError):
    """Accepted, then closed or reset before a single byte came back: a printer whose one
    connection is someone else's does exactly this (issue 12, episode B)."""


# The reason label of a failed printer read (metrics: pgw_poll_errors_total), most specific
# class first: a fixed, small set, never text from the printer.
_POLL_ERROR_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (PrinterUnreachableError, "unreachable"),
    (PrinterRefusedError, "refused"),
    (PrinterTimeoutError, "timeout"),
    (PrinterTurnedAwayError, "turned_away"),
    (PrinterDisconnectedError, "disconnected"),
    (ReplyTooLargeError, "reply_too_large"),
    (MalformedReplyError, "malformed_reply"),
    (UnexpectedPayloadError, "unexpected_payload"),
)


def poll_error_reason(err: Exception) -> str:
    """A failed read's reason, one of a fixed set (``other`` for anything unforeseen)."""
    for kind, reason in _POLL_ERROR_REASONS:
        if isinstance(err, kind):
            return reason
    return "other"
