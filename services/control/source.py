"""Fetching commands: ``GET {url}/v1/commands?gateway_id=..&wait=N`` (architecture §4.3).

The request timeout is ``wait`` plus a margin, so a server that holds the long poll is not
cut off, and a server that ignores ``wait`` and answers at once is not hammered: an empty
answer that came back early is followed by a pause. Failures back off with full jitter.
The server's ``Date`` header is kept with each answer so ``expires_at`` can be turned into
"seconds left" on the server's own clock, never on the Pi's.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import msgspec
import requests

from gateway.config import Secret
from gateway.messages import Command, command_list_json_decoder

logger = logging.getLogger(__name__)
MARGIN_S = 10.0


@dataclass(frozen=True)
class Fetched:
    """One answer: the commands, when it arrived (boot clock) and the server's time if sent."""

    commands: tuple[Command, ...]
    server_time: datetime | None


class FetchError(Exception):
    """The command source could not be read this time (network, HTTP status, bad body)."""


class CommandSource:
    """Long-polls one API for one gateway's commands."""

    def __init__(self, url: str, token: Secret, gateway_id: str, wait_s: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/commands"
        self.gateway_id = gateway_id
        self.wait_s = wait_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token.reveal()}"

    def fetch(self) -> Fetched:
        """One long poll; FetchError on any trouble (never the token in the message)."""
        try:
            response = self.session.get(
                self.endpoint,
                params={"gateway_id": self.gateway_id, "wait": f"{self.wait_s:g}"},
                timeout=(10.0, self.wait_s + MARGIN_S),
            )
        except requests.RequestException as err:
            raise FetchError(f"{type(err).__name__}") from err
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code}")
        try:
            listing = command_list_json_decoder.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise FetchError(f"malformed command list: {err}") from err
        return Fetched(listing.commands, _server_time(response.headers.get("Date")))

    def close(self) -> None:
        """Close the session."""
        self.session.close()


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
