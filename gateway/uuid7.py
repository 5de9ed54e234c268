"""UUIDv7 (RFC 9562 §5.7): a 48-bit Unix millisecond timestamp, then random bits.

Python 3.11's ``uuid`` module has no ``uuid7`` (it arrives in 3.14). Job ids use v7 so they
sort by start time in the API's tables and logs; uniqueness rests on the 74 random bits, not
on the clock, so a Pi that booted with a wrong clock still makes distinct ids.
"""

from __future__ import annotations

import os
import uuid

_MS_MASK = (1 << 48) - 1


def uuid7_from(unix_ms: int, random_bytes: bytes) -> uuid.UUID:
    """The UUIDv7 of a millisecond timestamp and 10 random bytes (deterministic, for tests)."""
    if len(random_bytes) != 10:
        raise ValueError("a UUIDv7 needs exactly 10 random bytes")
    rand = int.from_bytes(random_bytes, "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (
        ((unix_ms & _MS_MASK) << 80)
        | (0x7 << 76)  # version
        | (rand_a << 64)
        | (0b10 << 62)  # RFC 9562 variant
        | rand_b
    )
    return uuid.UUID(int=value)


def uuid7(unix_s: float) -> str:
    """A new UUIDv7 as text, stamped with ``unix_s`` (wall-clock seconds); never negative."""
    return str(uuid7_from(max(0, int(unix_s * 1000)), os.urandom(10)))
