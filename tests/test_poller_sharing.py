"""The sharing state machine (another client has the printer) as tables: every transition,
and when each state looks again."""

from __future__ import annotations

import pytest

from services.poller.schedule import Listening, Look
from services.poller.sharing import (
    HELD_BACKOFF_CAP,
    Sharing,
    SharingState,
    heard,
    lost,
    next_look,
    turned_away,
)

LISTENING = Listening(idle_listen_s=0.45, held_listen_s=0.8, clear_after_s=0.7)
FREE = SharingState()
SUSPECT = SharingState(Sharing.SUSPECT)


def held(looks: int = 0, quiet_s: float = 0.0) -> SharingState:
    return SharingState(Sharing.HELD, looks, quiet_s)


@pytest.mark.parametrize(
    ("before", "foreign", "listened_s", "after"),
    [
        (FREE, 0, 0.45, FREE),  # a quiet probe
        (FREE, 1, 0.45, held()),  # one frame nobody asked for: held at once
        (FREE, 3, 0.01, held()),
        (SUSPECT, 0, 0.45, FREE),  # it answered after one refusal: nothing to report
        (SUSPECT, 2, 0.45, held()),
        (held(), 2, 0.3, held(1)),  # still talking: back-off grows
        (held(3), 1, 0.8, held(4)),
        (held(), 0, 0.8, FREE),  # a whole held listen without a frame: back
        (held(), 0, 0.7, FREE),  # exactly clear_after_s
        (held(2), 0, 0.4, held(3, 0.4)),  # quiet, not yet long enough (a held link's poll)
        (held(3, 0.4), 0, 0.4, FREE),  # quiet adds up across looks
        (held(3, 0.4), 1, 0.4, held(4)),  # a frame starts the quiet over
    ],
)
def test_a_reading_moves_sharing(
    before: SharingState, foreign: int, listened_s: float, after: SharingState
) -> None:
    assert heard(before, foreign, listened_s, LISTENING) == after
    assert after.held is (after.sharing is Sharing.HELD)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (FREE, SUSPECT),  # one turn-away is not news yet
        (SUSPECT, held()),  # the second is
        (held(), held(1)),
        (held(5, 0.3), held(6)),
    ],
)
def test_a_turn_away_moves_sharing(before: SharingState, after: SharingState) -> None:
    assert turned_away(before) == after


def test_any_other_failure_hands_back_to_the_lease() -> None:
    assert lost() == FREE


P = 30.0


@pytest.mark.parametrize(
    ("state", "look"),
    [
        (FREE, None),  # the lease state machine decides
        (SUSPECT, Look(P)),  # exactly one interval: no retry storm, no slower than a probe
        (held(0), Look(P, jitter=True, least_s=P)),
        (held(1), Look(2 * P, jitter=True, least_s=P)),
        (held(9), Look(HELD_BACKOFF_CAP * P, jitter=True, least_s=P)),  # capped
    ],
)
def test_when_each_state_looks_again(state: SharingState, look: Look | None) -> None:
    assert next_look(state, P) == look


@pytest.mark.parametrize("looks", [0, 1, 2, 10])
def test_held_looks_are_never_more_than_one_per_interval_nor_beyond_the_cap(looks: int) -> None:
    look = next_look(held(looks), P)
    assert look is not None
    delays = [look.next_delay_s() for _ in range(200)]
    assert min(delays) >= P
    assert max(delays) <= HELD_BACKOFF_CAP * P


def test_a_probe_listens_longer_while_held() -> None:
    assert FREE.listen_s(LISTENING) == 0.45
    assert SUSPECT.listen_s(LISTENING) == 0.45
    assert held().listen_s(LISTENING) == 0.8
    assert LISTENING.clear_after_s <= LISTENING.held_listen_s  # one quiet held look clears
