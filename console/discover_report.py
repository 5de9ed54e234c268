"""What ``discover`` prints, without I/O: a table of the printers found and a ``[[printers]]``
block to paste into the config.

Everything a printer sent is untrusted text. For the terminal every character that is not
plainly visible (C0/C1 controls such as ESC, format characters such as bidirectional
overrides, line separators, unassigned code points) becomes "?", so a printer named
``"\\x1b]52;..."`` can neither move the cursor nor write the clipboard. For the TOML block the
same cleaned text is written as a basic string with quotes and backslashes escaped, so a name
like ``x"\\n[api]`` stays one value and cannot add keys or tables. The printer id is derived
from the name but only from the id alphabet (``gateway.messages.ID_PATTERN``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from gateway.discovery import DiscoveryReply
from gateway.messages import ID_PATTERN

DEFAULT_TCP_PORT = 8899
_ID_MAX = 64
_NOT_ID = re.compile(r"[^a-z0-9]+")
_HIDDEN_CATEGORIES = ("C", "Zl", "Zp")  # Cc Cf Cs Co Cn, line and paragraph separators


class Found(NamedTuple):
    """One reply and the address it came from (the datagram's source, not a printer field)."""

    address: str
    reply: DiscoveryReply


def visible(text: str, limit: int | None = None) -> str:
    """`text` with every hidden or control character replaced by "?", cut to `limit`."""
    cleaned = "".join(
        "?" if unicodedata.category(char).startswith(_HIDDEN_CATEGORIES) else char for char in text
    )
    if limit is not None and len(cleaned) > limit:
        return cleaned[: limit - 1] + "…"
    return cleaned


def toml_string(text: str) -> str:
    """A TOML basic string holding `text` (already made visible): quotes, backslashes and any
    control character escaped, so the value can never end early."""
    out = []
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif unicodedata.category(char).startswith(_HIDDEN_CATEGORIES):
            code = ord(char)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def printer_id(name: str, taken: Iterable[str] = ()) -> str:
    """A config id from a printer's name: ASCII letters and digits joined by "-", at most 64
    characters, "printer" when nothing is left, "-2", "-3", ... when already taken."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    base = _NOT_ID.sub("-", ascii_name.lower()).strip("-")[:_ID_MAX].rstrip("-") or "printer"
    used = set(taken)
    candidate, n = base, 1
    while candidate in used:
        n += 1
        suffix = f"-{n}"
        candidate = base[: _ID_MAX - len(suffix)].rstrip("-") + suffix
    if not re.match(ID_PATTERN, candidate):  # unreachable by construction; never emit a bad id
        raise ValueError(f"derived id {candidate!r} does not match {ID_PATTERN}")
    return candidate


def merge(found: Iterable[Found]) -> list[Found]:
    """One entry per printer (address and TCP port): the newer reply wins, since it also
    carries the serial number; sorted by name, then address."""
    best: dict[tuple[str, int], Found] = {}
    for item in found:
        key = (item.address, item.reply.command_port)
        if key not in best or (item.reply.format == "newer" and best[key].reply.format == "legacy"):
            best[key] = item
    return sorted(best.values(), key=lambda item: (item.reply.name, item.address))


def table(found: Sequence[Found]) -> str:
    """A plain-text table: name, address, model, serial, state, reply format (name and
    serial cut to a width a terminal line can hold)."""
    rows = [("NAME", "ADDRESS", "MODEL", "SERIAL", "STATE", "REPLY")]
    for item in found:
        reply = item.reply
        state = reply.state if reply.state != "unknown" else f"unknown ({reply.status_code})"
        rows.append(
            (
                visible(reply.name, 40) or "-",
                item.address,
                reply.model,
                visible(reply.serial, 32) or "-",
                state,
                reply.format,
            )
        )
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def printers_block(found: Sequence[Found]) -> str:
    """``[[printers]]`` tables for the config, one per printer, with unique ids."""
    ids: list[str] = []
    tables = []
    for item in found:
        reply = item.reply
        name = visible(reply.name, 255)
        ids.append(printer_id(name, ids))
        port = reply.command_port or DEFAULT_TCP_PORT
        serial = visible(reply.serial, 64) or "none given"
        tables.append(
            "\n".join(
                (
                    f"# {reply.model}, serial {serial}, {reply.state} when found",
                    "[[printers]]",
                    f"id = {toml_string(ids[-1])}",
                    f"name = {toml_string(name or ids[-1])}",
                    f"host = {toml_string(item.address)}",
                    f"port = {port}",
                )
            )
        )
    return "\n\n".join(tables)


def nothing_found(targets: Sequence[str], unicast: bool) -> str:
    """What to say, and what to check, when no printer answered."""
    tried = ", ".join(targets)
    hints = [
        "- the printer is switched on, its network is on, and it shows an IP address on its screen",
        "- this machine is on the same LAN (same Wi-Fi/subnet; guest networks and "
        "client isolation hide devices from each other)",
        "- no firewall here drops incoming UDP replies (they come from the printer's "
        "ports 19000/8899/48899 to a random port of ours)",
    ]
    if unicast:
        hints.append("- the address is right; try without --to to search the whole LAN")
    else:
        hints.append(
            "- routers that drop multicast or broadcast: if you know the printer's address, "
            "try: printer-gateway discover --to ADDRESS"
        )
    return f"No printer answered the discovery probe ({tried}). Check:\n" + "\n".join(hints)
