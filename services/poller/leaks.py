"""Telling another client's replies from ours and from garbage on the line, sans I/O.

Theory of operation
-------------------
FlashForge firmware does not keep replies apart per connection: while another client (the
vendor slicer, a phone app) polls the printer, its reply frames leak into every open
connection (joseffallman/hass_flashforge PR #117; Chris112358/3D_printer_observer). A *frame*
is a header line ``CMD <code> Received.``, payload lines, and a line that *equals* ``ok`` (or
``ok.``). A LeakScanner sees every byte one link receives, in order, each chunk marked
*asked* (read while one of our requests awaited its reply) or *quiet* (nothing of ours
outstanding: bytes already waiting when we were about to send, or heard while listening).

* A complete frame whose header came in a quiet stretch is **foreign**: nobody on our
  connection had asked for anything. It counts, whatever its code (a leaked reply to a code
  we also send is just as foreign when nobody asked).
* Frames inside an asked stretch never count. The framer (``protocol.ReplyBuffer``) takes
  ours and drops the rest; a broken firmware (or the simulator's ``garbage_lines`` fault)
  may put junk, even a stray frame, in front of every reply, and that is not evidence of a
  second client.
* Garbage lines, a bare ``ok``, another client's upload acks (``N0001 ok.``) and a header
  never closed by ``ok`` are not frames and never count.

Only counting happens here; what a count means for the printer is ``sharing.py``'s call.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"CMD ([MG]\d{1,4}) Received\.$", re.ASCII)
MAX_LINE_BYTES = 4096  # a longer "line" is noise; dropping it keeps the scanner bounded


class LeakScanner:
    """Counts foreign reply frames in one connection's byte stream (see the module doc)."""

    def __init__(self) -> None:
        self.foreign = 0  # complete foreign frames seen so far
        self.last_foreign_code: str | None = None
        self._partial = bytearray()
        self._frame: tuple[str, bool] | None = None  # (code, header came while quiet)

    def feed(self, data: bytes, *, quiet: bool) -> None:
        """Take received bytes; ``quiet``: none of our requests was waiting for them."""
        self._partial += data
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[:end])
            del self._partial[: end + 1]
            self._line(line.decode("utf-8", "replace").strip(), quiet)
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial.clear()
            self._frame = None

    def _line(self, text: str, quiet: bool) -> None:
        header = _HEADER.search(text)  # a header glued to leaked bytes still starts a frame
        if header is not None:
            self._frame = (header[1], quiet)
        elif text in ("ok", "ok.") and self._frame is not None:
            code, started_quiet = self._frame
            self._frame = None
            if started_quiet:
                self.foreign += 1
                self.last_foreign_code = code
