"""Fetching commands: ``GET {url}/v1/commands?gateway_id=..&wait=N`` (architecture §4.3).

The request's total deadline is ``wait`` plus a margin, so a server that holds the long poll
is not cut off and one that drips or stalls is; the answer is read up to
``MAX_LIST_BYTES``, and of a larger one only the commands complete within that prefix are
taken (``split_entries``: the rest are listed again once these have results, as with the
``MAX_COMMANDS`` cap); redirects are not followed (the token stays with the configured
origin). 401/403 raise ``AuthRefused``: a condition of the whole gateway, reported and
retried, not a reason to stop.

Each listed command is decoded on its own (``parse_command_list``): one that is malformed
(a bad ``expires_at``, a missing field, a wrong type) is returned among ``invalid`` with its
id, so control answers it ``rejected`` with the reason, and every other command runs.
An entry without a usable id cannot be answered: it is logged once.
The server's ``Date`` header is kept with each answer so ``expires_at`` can be turned into
"seconds left" on the server's own clock, never on the Pi's.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from gateway.config import Secret
from gateway.errors import GatewayError
from gateway.http import HttpClient, HttpError
from gateway.messages import DECODE_ERRORS, Command, CommandId
from gateway.redaction import quoted, safe

logger = logging.getLogger(__name__)
MARGIN_S = 10.0
MAX_LIST_BYTES = 4 * 1024 * 1024
MAX_COMMANDS = 10_000  # per answer; the rest are listed again once these have results
_REMEMBERED_UNIDENTIFIED = 1000


@dataclass(frozen=True)
class InvalidCommand:
    """A listed command that cannot be read: its id, printer (when usable) and why."""

    id: str
    printer_id: str | None
    type: str
    reason: str


@dataclass(frozen=True)
class Fetched:
    """One answer: the commands, those that cannot be read, and the server's time if sent."""

    commands: tuple[Command, ...]
    server_time: datetime | None
    invalid: tuple[InvalidCommand, ...] = ()
    capped: bool = False  # the API listed more than MAX_COMMANDS: the rest come later

    @property
    def ids(self) -> frozenset[str]:
        """Every command id in the answer, readable or not."""
        return frozenset(c.id for c in self.commands) | {c.id for c in self.invalid}


class FetchError(GatewayError):
    """The command source could not be read this time (network, HTTP status, bad body)."""


class AuthRefused(FetchError):
    """The API refuses the token (401/403)."""


class _Listing(msgspec.Struct):
    commands: list[msgspec.Raw]


_listing_decoder = msgspec.json.Decoder(_Listing)
_command_decoder = msgspec.json.Decoder(Command)
_loose_decoder = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True)
class ParsedCommands:
    """A command list read item by item: the readable commands, the malformed ones that can
    be answered, and (digest, problem) of those without a usable id."""

    commands: list[Command]
    invalid: list[InvalidCommand]
    unidentified: list[tuple[str, str]]
    listed: int  # entries in the answer; more than MAX_COMMANDS means some were left for later


def parse_command_list(body: bytes, truncated: bool = False) -> ParsedCommands:
    """The commands of a ``GET /v1/commands`` answer, each decoded on its own; FetchError
    only when the answer as a whole is not a command list. When the whole cannot be decoded
    (one entry too deeply nested, a lone surrogate in one string) or was cut at the size cap
    (`truncated`), the entries are found by ``split_entries`` and decoded one by one."""
    entries: list[bytes] | None = None
    if not truncated:
        try:
            entries = [bytes(raw) for raw in _listing_decoder.decode(body).commands]
        except DECODE_ERRORS:
            entries = None
    if entries is None:
        entries = split_entries(body)
        if entries is None:
            raise FetchError('malformed command list: no "commands" array')
    parsed = ParsedCommands([], [], [], len(entries))
    for raw in entries[:MAX_COMMANDS]:
        try:
            parsed.commands.append(_command_decoder.decode(raw))
        except DECODE_ERRORS as err:
            problem = "nested too deeply" if isinstance(err, RecursionError) else str(err)
            item = _invalid(raw, problem)
            if isinstance(item, InvalidCommand):
                parsed.invalid.append(item)
            else:
                parsed.unidentified.append((hashlib.sha256(raw).hexdigest(), item))
    return parsed


# Strings whole (an unterminated one runs to the end: a body cut at the cap), then structure.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}:,]')
_ID_FIELD = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){1,128}")')


def split_entries(body: bytes) -> list[bytes] | None:
    """The entries of the top-level ``"commands"`` array as byte strings, found without
    decoding them (None when there is no such array). Only the key of the outermost object
    counts, and of a repeated key the last array, as a JSON decoder takes it. Strings are
    skipped whole, so brackets and commas inside them do not count; an entry cut off by the
    end of `body` (the size cap) is left out."""
    depth = 0
    found: list[bytes] | None = None
    reading: list[bytes] | None = None  # entries of the "commands" array being read
    entry_start = 0
    previous: tuple[bytes, bytes] = (b"", b"")  # the two tokens before this one
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            if token == b"[" and depth == 1 and previous[1] == b":" and _is_key(previous[0]):
                reading, entry_start = [], match.end()
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if reading is not None and depth == 1:  # the array closed
                _add_entry(reading, body[entry_start : match.start()])
                found, reading = reading, None
        elif token == b"," and reading is not None and depth == 2:
            _add_entry(reading, body[entry_start : match.start()])
            entry_start = match.end()
        previous = (previous[1], token)
    return reading if reading is not None else found  # cut short: the entries so far


def _is_key(token: bytes) -> bool:
    """Whether a string token reads "commands" once decoded (``"comm\\u0061nds"`` does, as a
    JSON decoder would take it)."""
    if token == b'"commands"':
        return True
    if not token.startswith(b'"') or b"\\" not in token or len(token) > 80:
        return False
    try:
        return bool(msgspec.json.decode(token) == "commands")
    except DECODE_ERRORS:
        return False


def _add_entry(entries: list[bytes], entry: bytes) -> None:
    if entry.strip():
        entries.append(entry.strip())


def _invalid(raw: bytes, problem: str) -> InvalidCommand | str:
    """What can be answered of a malformed command, or only the problem when it has no
    usable id (then nobody can be told: it is logged)."""
    try:
        fields = _loose_decoder.decode(raw)
    except DECODE_ERRORS:
        fields = _id_only(raw)
    try:
        command_id = msgspec.convert(fields.get("id"), CommandId)
    except msgspec.ValidationError:
        return safe(f"{problem} (id {str(fields.get('id'))[:40]!r})")
    printer = fields.get("printer_id")
    kind = fields.get("type")
    return InvalidCommand(
        id=command_id,
        printer_id=printer if isinstance(printer, str) and 0 < len(printer) <= 64 else None,
        type=kind if isinstance(kind, str) and 0 < len(kind) <= 64 else "",
        reason=safe(f"malformed command: {problem}"),
    )


def _id_only(raw: bytes) -> dict[str, Any]:
    """The id of an entry that does not decode at all, read on its own."""
    match = _ID_FIELD.search(raw)
    if match is None:
        return {}
    try:
        return {"id": msgspec.json.decode(match[1])}
    except DECODE_ERRORS:
        return {}


class CommandSource:
    """Long-polls one API for one gateway's commands."""

    def __init__(self, url: str, token: Secret, gateway_id: str, wait_s: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/commands"
        self.gateway_id = gateway_id
        self.wait_s = wait_s
        self.client = HttpClient({"Authorization": f"Bearer {token.reveal()}"})
        self._unidentified_seen: dict[str, None] = {}  # bounded: log each one once
        self._capped = False

    def fetch(self) -> Fetched:
        """One long poll; FetchError on any trouble (never the token in the message)."""
        try:
            answer = self.client.exchange(
                "GET",
                self.endpoint,
                params={"gateway_id": self.gateway_id, "wait": f"{self.wait_s:g}"},
                total_s=self.wait_s + MARGIN_S,
                max_body=MAX_LIST_BYTES,
            )
        except HttpError as err:
            raise FetchError(safe(str(err))) from err
        if answer.status in (401, 403):
            raise AuthRefused(safe(f"HTTP {answer.status}: {quoted(answer.text())}"))
        if 300 <= answer.status < 400:
            raise FetchError(f"HTTP {answer.status}: redirect not followed")
        if answer.status != 200:
            raise FetchError(safe(f"HTTP {answer.status}: {quoted(answer.text())}"))
        parsed = parse_command_list(answer.body, truncated=answer.truncated)
        for digest, problem in parsed.unidentified:
            self._log_unidentified(digest, problem)
        capped = answer.truncated or parsed.listed > MAX_COMMANDS
        if capped and not self._capped:
            logger.warning(
                "the API lists more commands than are taken at once (%s): taking the first %d",
                f"over {MAX_LIST_BYTES} bytes" if answer.truncated else f"{parsed.listed}",
                len(parsed.commands) + len(parsed.invalid),
            )
        self._capped = capped
        server_time = _server_time(answer.headers.get("Date"))
        return Fetched(tuple(parsed.commands), server_time, tuple(parsed.invalid), capped)

    def _log_unidentified(self, digest: str, problem: str) -> None:
        """A command without a usable id is listed again on every fetch: log it once."""
        if digest in self._unidentified_seen:
            return
        if len(self._unidentified_seen) >= _REMEMBERED_UNIDENTIFIED:
            self._unidentified_seen.pop(next(iter(self._unidentified_seen)))
        self._unidentified_seen[digest] = None
        logger.warning("the API lists a command without a usable id, ignored: %s", problem)

    def close(self) -> None:
        """Close the session."""
        self.client.close()


def _server_time(header: str | None) -> datetime | None:
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


def seconds_until(expires_at: datetime | None, server_time: datetime | None, ttl_s: float) -> float:
    """How long a command may wait: the TTL, shortened by ``expires_at`` read on the server's
    clock (its ``Date`` header). Without a server time the local wall clock is the fallback."""
    if expires_at is None:
        return ttl_s
    reference = server_time.timestamp() if server_time is not None else time.time()
    return max(0.0, min(ttl_s, expires_at.timestamp() - reference))
