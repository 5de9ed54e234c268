"""Record ids: unique across restarts without trusting the wall clock, stable across re-sends."""

from __future__ import annotations

import itertools
import secrets


class RecordIds:
    """``<gateway>:<scope>:<boot token>:<n>``; the random boot token separates process lives."""

    def __init__(self, gateway_id: str, scope: str) -> None:
        self._prefix = f"{gateway_id}:{scope}:{secrets.token_hex(6)}"
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new id, never returned before by any process."""
        return f"{self._prefix}:{next(self._counter)}"
