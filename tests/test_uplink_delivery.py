"""Delivery: outcome classification, Retry-After, backoff, and the real HTTP exchange."""

from __future__ import annotations

import threading
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import msgspec
import pytest

from gateway.config import Secret, Token
from gateway.layout import Layout
from gateway.loops import Backoff
from gateway.messages import Event, Status, utc_now
from services.uplink.delivery import Deliverer, Disposition, PostResult, classify, retry_after
from services.uplink.queue import Batch, DurableQueue
from services.uplink.service import DeliveryThread
from tests.support.configs import make_config
from tests.support.http import Reply, Script, echo, hostile_api, scripted_api
from tests.support.waiting import wait_for


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        (200, Disposition.DELIVERED),
        (201, Disposition.DELIVERED),
        (204, Disposition.DELIVERED),
        (408, Disposition.RETRY),
        (429, Disposition.RETRY),
        (500, Disposition.RETRY),
        (503, Disposition.RETRY),
        (302, Disposition.RETRY),
        (400, Disposition.SPLIT),  # one bad record must not take its batch with it
        (401, Disposition.UNAUTHORIZED),
        (403, Disposition.UNAUTHORIZED),
        (404, Disposition.REFUSED),
        (410, Disposition.REFUSED),
        (413, Disposition.SPLIT),
        (422, Disposition.SPLIT),
    ],
)
def test_classify(status: int, disposition: Disposition) -> None:
    assert classify(status, None, "").disposition is disposition


def test_retry_after_seconds_date_and_garbage() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("999999") == 600.0
    for garbage in ("²", "-5", "1e9", "Mon, 99 Foo 2026", "٣", "9" * 400):
        assert retry_after(garbage) is None or retry_after(garbage) == 600.0
    assert retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(
        30, abs=1
    )
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_backoff_is_full_jitter_capped_and_resets() -> None:
    backoff = Backoff(base_s=1, cap_s=60)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0 <= d <= 60 for d in delays)
    assert delays[0] <= 1
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_post_sends_bearer_idempotency_key_and_the_v1_body() -> None:
    script = Script()
    with scripted_api(script) as url:
        deliverer = Deliverer(url + "/api", Secret("tok-1"), "gw", 5)
        answer = deliverer.post(Batch("batch-1", (1,), (b'{"kind":"event","id":"e1"}',)))
        deliverer.close()
    assert answer.disposition is Disposition.DELIVERED
    headers, body = script.requests[0]
    assert headers["Authorization"] == "Bearer tok-1"
    assert headers["Idempotency-Key"] == "batch-1"
    assert msgspec.json.decode(body) == {
        "gateway_id": "gw",
        "records": [{"kind": "event", "id": "e1"}],
    }


def test_timeouts_and_refused_connections_are_retries() -> None:
    script = Script(delay_s=1.5)
    with scripted_api(script) as url:
        deliverer = Deliverer(url, Secret("t"), "gw", 0.3)
        assert deliverer.post(Batch("b", (1,), (b"{}",))).disposition is Disposition.RETRY
        deliverer.close()
    deliverer = Deliverer(url, Secret("t"), "gw", 0.3)  # the server is gone now
    answer = deliverer.post(Batch("b", (1,), (b"{}",)))
    assert answer.disposition is Disposition.RETRY
    assert "connection" in answer.reason
    deliverer.close()


def _fill(tmp_path: Path, url: str, n: int) -> DeliveryThread:
    config = make_config(tmp_path, {"p": 1}, api_url=url, api={"timeout_s": 2.0})
    queue = DurableQueue(Layout.of(config).queue_db, 10**8)
    queue.accept(
        [Event(id=f"e{i}", printer_id="p", ts=utc_now(), event="printer_online") for i in range(n)]
    )
    queue.close()
    thread = DeliveryThread(config, Token(Secret("t"), "test"), threading.Event())
    thread.backoff = Backoff(base_s=0.01, cap_s=0.05)
    return thread


def test_503_with_retry_after_then_recovery_same_idempotency_key(tmp_path: Path) -> None:
    script = Script(answers=[(503, {"Retry-After": "1"}), (500, {}), (200, {})])
    with scripted_api(script) as url:
        thread = _fill(tmp_path, url, 3)
        thread.start()
        wait_for(lambda: len(script.requests) >= 3, every_s=0.05)
        thread.stopping.set()
        thread.join(10)
    keys = [headers["Idempotency-Key"] for headers, _ in script.requests]
    assert len(set(keys)) == 1  # every retry of the stored batch carried the same key
    queue = DurableQueue(Layout.of(make_config(tmp_path, {"p": 1})).queue_db, 10**8)
    assert queue.stats().depth_by_kind == {}
    assert queue.stats().last_delivery is not None


def test_permanent_404_dead_letters_and_delivery_goes_on(tmp_path: Path) -> None:
    script = Script(answers=[(404, {}), (200, {})])
    with scripted_api(script) as url:
        thread = _fill(tmp_path, url, 2)
        thread.start()
        wait_for(lambda: len(script.requests) >= 1, every_s=0.05)
        queue = DurableQueue(Layout.of(make_config(tmp_path, {"p": 1})).queue_db, 10**8)
        queue.accept([Event(id="late", printer_id="p", ts=utc_now(), event="printer_online")])
        thread.work.set()
        wait_for(lambda: len(script.requests) >= 2, every_s=0.05)
        thread.stopping.set()
        thread.join(10)
    stats = queue.stats()
    assert stats.dead == 2
    assert stats.depth_by_kind == {}
    assert "HTTP 404" in (stats.last_error or "")
    assert b'"late"' in script.requests[1][1]


def _run_until(thread: DeliveryThread, condition: Callable[[], bool], within_s: float = 10) -> None:
    thread.start()
    try:
        wait_for(condition, within_s, every_s=0.02)
    finally:
        thread.stopping.set()
        thread.join(10)


def _queue(tmp_path: Path) -> DurableQueue:
    return DurableQueue(Layout.of(make_config(tmp_path, {"p": 1})).queue_db, 10**8)


def test_a_refused_token_keeps_every_record_and_is_reported(tmp_path: Path) -> None:
    with hostile_api() as api:
        api.records = echo(401)
        thread = _fill(tmp_path, api.url, 5)
        _run_until(thread, lambda: len(api.posts()) >= 3)
        problems = {p.key: p.reason for p in thread.problems.current()}
    assert "api auth" in problems
    assert "HTTP 401" in problems["api auth"]
    assert "Bearer t" not in problems["api auth"]
    stats = _queue(tmp_path).stats()
    assert stats.dead == 0
    assert stats.depth_by_kind == {"event": 5}  # all kept, to be sent once the token works


def test_while_refused_it_asks_again_at_least_every_15_s(tmp_path: Path) -> None:
    thread = _fill(tmp_path, "http://127.0.0.1:9", 1)
    thread.backoff = Backoff(base_s=1000, cap_s=1000)
    assert all(thread._unauthorized("HTTP 401") <= 15.0 for _ in range(50))
    thread.queue.close()
    thread.poster.close()


def test_an_outage_is_retried_within_2_s_for_a_minute_then_within_30_s(tmp_path: Path) -> None:
    """Recovery (issue 11): the API's return is seen within 2 s after an outage of up to a
    minute, and within the cap, 30 s, after a longer one."""
    thread = _fill(tmp_path, "http://127.0.0.1:9", 1)
    thread.backoff = DeliveryThread.new_backoff()  # the service's, not the test's quick one
    down = PostResult(Disposition.RETRY, "connection refused")
    early = [thread._failing(down) for _ in range(40)]  # the outage starts now
    assert max(early) <= 2.0
    assert thread.outage_since is not None
    thread.outage_since -= 61  # a minute later
    late = [thread._failing(down) for _ in range(200)]
    assert max(late) <= 30.0
    assert max(late) > 2.0  # it does back off: no hammering a server that stays down
    thread.queue.close()
    thread.poster.close()


def test_413_splits_until_batches_fit_and_nothing_is_dead(tmp_path: Path) -> None:
    with hostile_api() as api:
        api.records = lambda r: Reply(413) if len(r.body) > 1000 else Reply(200)
        thread = _fill(tmp_path, api.url, 40)
        _run_until(thread, lambda: len(api.stored_records()) == 40)
    assert _queue(tmp_path).stats().dead == 0
    assert thread.batch_bytes < 2 * 1024 * 1024  # later claims are smaller
    ids = [r["id"] for r in api.stored_records()]
    assert ids == [f"e{i}" for i in range(40)]  # in order


def test_one_bad_record_is_refused_alone(tmp_path: Path) -> None:
    with hostile_api() as api:
        api.records = lambda r: Reply(400, b"bad e7") if b'"e7"' in r.body else Reply(200)
        thread = _fill(tmp_path, api.url, 20)
        _run_until(thread, lambda: len(api.stored_records()) == 19)
    queue = _queue(tmp_path)
    dead = queue.dead_letters(10)
    assert [msgspec.json.decode(body)["id"] for _, body in dead] == ["e7"]
    assert "bad e7" in dead[0][0]
    assert queue.stats().depth_by_kind == {}


def test_the_delivery_loop_outlives_an_unexpected_error(tmp_path: Path) -> None:
    with hostile_api() as api:
        thread = _fill(tmp_path, api.url, 3)
        real_post = thread.poster.post
        calls: list[int] = []

        def flaky(batch: Batch) -> PostResult:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug in one iteration")
            return real_post(batch)

        thread.poster.post = flaky  # type: ignore[method-assign]
        thread.guard.base_s = 0.01
        _run_until(thread, lambda: len(api.stored_records()) == 3)
    assert thread.guard.failures == 0
    assert thread.problems.current() == ()  # reported while failing, cleared after


class RecordingPoster:
    """Stands in for the HTTP poster: every batch is stored at once."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def post(self, batch: Batch) -> PostResult:
        self.batches.append(batch)
        return PostResult(Disposition.DELIVERED, "HTTP 200", status=200)

    def close(self) -> None:
        pass


def test_steady_statuses_never_starve_the_reliable_lane(tmp_path: Path) -> None:
    """Statuses arrive before every step: the queued event still goes out within two."""
    thread = _fill(tmp_path, "http://127.0.0.1:9", 1)
    poster = RecordingPoster()
    thread.poster = poster  # type: ignore[assignment]
    for n in range(4):
        thread.live.add(b"p", [Status(id=f"s{n}", printer_id="p", ts=utc_now(), state="printing")])
        thread._step()
    kinds = ["live" if not b.positions else "queue" for b in poster.batches]
    assert "queue" in kinds[:2], kinds
    assert kinds.count("live") >= 3  # and the statuses still flow
    thread.queue.close()


def test_a_post_that_raises_hands_its_statuses_back(tmp_path: Path) -> None:
    thread = _fill(tmp_path, "http://127.0.0.1:9", 0)

    class Exploding(RecordingPoster):
        def post(self, batch: Batch) -> PostResult:
            raise RuntimeError("a bug")

    thread.poster = Exploding()  # type: ignore[assignment]
    thread.live.add(b"p", [Status(id="s1", printer_id="p", ts=utc_now(), state="idle")])
    with pytest.raises(RuntimeError):
        thread._step()
    assert [e.status.id for e in thread.live.due_to_spill()] == ["s1"]  # not stuck as taken
    thread.queue.close()
