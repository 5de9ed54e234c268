"""Whether another client has the printer, as pure decisions: when to say so, when to stop
saying so, and how rarely to knock while it does (issue 12).

Theory of operation
-------------------
The REX II serves one controlling client; the vendor slicer, a phone app or a Home Assistant
integration may have it when we look. Two shapes are known, and each look yields one input:

* **Foreign frames** (episode A): the other client holds control and polls; its reply
  frames leak into our connection. ``leaks.py`` counts complete frames that arrived while
  none of our requests was waiting (``heard(foreign, listened_s)``). Our own replies still
  come through, so the reading is true and is reported, under the state
  ``held_by_other_client`` instead of ``idle``.
* **Turned away** (episode B): the other client has the printer's only connection; ours is
  refused, or accepted and closed before a single byte (``turned_away``).

States (``Sharing``), between two looks:

* **FREE**: no sign of anyone else. The lease state machine (``schedule.py``) paces looks.
* **SUSPECT**: turned away once. One refusal may be a printer rebooting, so nothing is
  reported yet, and there is no quick retry either: the next look comes exactly one probe
  interval later. Turned away again -> HELD; a reading -> FREE.
* **HELD**: reported as ``held_by_other_client`` (one ``printer_held_by_other_client``
  event per episode: the Belief's connectivity, ``events.py``, says it once). Entered from
  FREE by a look with foreign frames, from SUSPECT by a second turn-away.

Invariants, and why:

* **Detection within two looks.** A look with foreign frames says HELD at once (a complete
  frame nobody asked for is not noise); a turn-away needs a second one, one interval later.
* **No second event in one episode.** Leaving HELD needs ``clear_after_s`` of listening
  without a foreign frame, counted across looks (``quiet_s``). A look in HELD listens
  ``held_listen_s``, more than one period of a 2 Hz poller and more than ``clear_after_s``,
  so one quiet look clears and a live episode cannot look quiet by luck. A failure of the
  "someone else" kind (reset, starved, garbled) keeps HELD instead of starting quick
  retries.
* **At most one connection attempt per probe interval while held, growing.** The k-th look
  in HELD comes ``probe_interval * 2**k`` later, capped at twice the probe interval and
  never below one interval (``Look.least_s``). The cap is what keeps the return within two
  probe intervals: a longer back-off would buy fewer connects (already at most two a minute
  at the default 30 s) with a user who sees "in use" long after the slicer let go.
* **Back within two looks.** The look after the other client lets go reads the printer
  and hears nothing foreign for ``held_listen_s``: FREE, ``printer_online``.

Nothing here does I/O; the tables in ``tests/test_poller_sharing.py`` are the policy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.loops import doubling
from services.poller.schedule import Listening, Look

HELD_BACKOFF_CAP = 2.0  # x probe interval: the return must still be seen within two intervals


class Sharing(enum.Enum):
    """Whether someone else has the printer, between two looks."""

    FREE = "free"
    SUSPECT = "suspect"
    HELD = "held"


@dataclass(frozen=True)
class SharingState:
    """Where sharing stands, the looks made while held, and the quiet heard since the
    last foreign frame (while held)."""

    sharing: Sharing = Sharing.FREE
    held_looks: int = 0
    quiet_s: float = 0.0

    @property
    def held(self) -> bool:
        """Report the printer as held by another client."""
        return self.sharing is Sharing.HELD

    def listen_s(self, listening: Listening) -> float:
        """How long a probe from this state keeps its connection."""
        return listening.held_listen_s if self.held else listening.idle_listen_s


def heard(
    state: SharingState, foreign: int, listened_s: float, listening: Listening
) -> SharingState:
    """The printer answered; `foreign` frames nobody asked for came in `listened_s`."""
    if foreign > 0:
        return SharingState(Sharing.HELD, state.held_looks + 1 if state.held else 0)
    if state.held:
        quiet = state.quiet_s + listened_s
        if quiet < listening.clear_after_s:
            return SharingState(Sharing.HELD, state.held_looks + 1, quiet)
    return SharingState()


def turned_away(state: SharingState) -> SharingState:
    """Refused, or closed before a byte; also any failure of the someone-else kind while
    held (reset, starved, garbled): no quick retries against a busy printer."""
    if state.sharing is Sharing.FREE:
        return SharingState(Sharing.SUSPECT)
    return SharingState(Sharing.HELD, state.held_looks + 1 if state.held else 0)


def lost() -> SharingState:
    """Any other failure (the printer went away): the lease state machine's business."""
    return SharingState()


def next_look(state: SharingState, probe_interval_s: float) -> Look | None:
    """When to look again, or None to let the lease state machine decide (FREE)."""
    match state.sharing:
        case Sharing.SUSPECT:
            return Look(probe_interval_s)
        case Sharing.HELD:
            delay = doubling(
                probe_interval_s, state.held_looks, HELD_BACKOFF_CAP * probe_interval_s
            )
            return Look(delay, jitter=True, least_s=probe_interval_s)
    return None
