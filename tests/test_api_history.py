"""The reference API's history for the web app: charts from compact samples, retention
(full rate for a day, downsampled after, raw bodies for an hour), jobs, a printer's commands,
the dashboard across gateways."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import requests

from gateway.messages import (
    Event,
    Job,
    NewCommand,
    Record,
    Status,
    Temperature,
    utc_text,
)
from reference_api.store import RAW_STATUS_S, Store
from tests.support.http import ApiThread

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = 86400.0


def status(printer: str, second: float, state: str = "printing", nozzle: float = 200) -> Status:
    ts = T0 + timedelta(seconds=second)
    return Status(
        id=f"{printer}:{second}",
        printer_id=printer,
        ts=ts,
        state=state,  # type: ignore[arg-type]
        nozzle=Temperature(nozzle, 210),
        bed=Temperature(60, 60),
        progress_percent=min(100.0, second / 100),
    )


def job(printer: str, n: int, outcome: str = "completed") -> Job:
    return Job(
        id=f"j{n}",
        printer_id=printer,
        seq=n,
        ts=T0 + timedelta(hours=n),
        job_id=f"job-{n}",
        file=f"part{n}.gx",
        outcome=outcome,  # type: ignore[arg-type]
        started_at=T0 + timedelta(hours=n - 1),
        ended_at=T0 + timedelta(hours=n),
        print_s=3000.0,
    )


def ms(second: float) -> int:
    return int((T0.timestamp() + second) * 1000)


def test_a_day_of_full_rate_then_one_sample_per_step_and_raw_bodies_for_an_hour(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "api.db")
    three_days = [status("rex1", s) for s in range(0, int(3 * DAY), 10)]  # every 10 s
    for start in range(0, len(three_days), 5000):
        store.store_records("gw", tuple(three_days[start : start + 5000]))
    now = T0.timestamp() + 3 * DAY
    total = [0, 0]
    while True:  # what the retention thread does: passes until one does nothing
        done = store.retain(now, full_rate_s=DAY, step_s=60)
        total[0] += done.downsampled
        total[1] += done.raw_deleted
        if not any(msgspec.structs.astuple(done)):
            break
    # Two days went to history at one sample a minute; the last day stays at full rate.
    assert total[0] == 2 * 8640
    old = store.samples("gw", "rex1", ms(0), ms(2 * DAY - 1), 100_000)
    assert len(old) == 2 * 1440
    assert all(b.ts_ms - a.ts_ms == 60_000 for a, b in itertools.pairwise(old))
    assert old[0].ts_ms == ms(50)  # the last sample of each minute, as it was
    recent = store.samples("gw", "rex1", ms(2 * DAY), ms(3 * DAY), 100_000)
    assert len(recent) == 8640
    assert (recent[-1].nozzle, recent[-1].bed_target, recent[-1].state) == (200, 60, "printing")
    # Raw bodies: everything was received "now" by the wall clock, so none is an hour old yet;
    # an hour later they go.
    assert total[1] == 0
    assert store.retain(time_now() + RAW_STATUS_S + 1, DAY * 1000, 60).raw_deleted > 0
    assert store.latest_statuses("gw")  # the newest status of a printer is kept for ever
    store.close()


def time_now() -> float:
    return datetime.now(UTC).timestamp()


def test_history_is_dropped_only_when_asked(tmp_path: Path) -> None:
    store = Store(tmp_path / "api.db")
    store.store_records("gw", tuple(status("rex1", s) for s in range(0, 7200, 30)))
    now = T0.timestamp() + 10 * DAY
    while any(msgspec.structs.astuple(store.retain(now, DAY, 60))):
        pass
    assert len(store.samples("gw", "rex1", ms(0), ms(DAY), 10_000)) == 120
    done = store.retain(now, DAY, 60, history_s=10 * DAY - 3600)  # keep the last 9 days 23 h
    assert done.history_deleted == 60
    assert len(store.samples("gw", "rex1", ms(0), ms(DAY), 10_000)) == 60
    store.close()


def test_a_chart_is_bounded_in_points_and_takes_the_last_of_each_slice(tmp_path: Path) -> None:
    store = Store(tmp_path / "api.db")
    store.store_records("gw", tuple(status("rex1", s, nozzle=s % 300) for s in range(3600)))
    store.store_records("gw", (status("other", 5),))
    chart = store.samples("gw", "rex1", ms(0), ms(3600), 60)
    assert 55 <= len(chart) <= 61
    assert chart[-1].ts_ms == ms(3599)
    assert all(s.ts_ms % 60_000 == ms(59) % 60_000 for s in chart)  # each slice's last
    assert store.samples("gw", "nobody", ms(0), ms(3600), 60) == []
    store.close()


def test_jobs_newest_first_and_a_printers_commands_with_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "api.db")
    records: tuple[Record, ...] = (job("rex1", 1), job("rex1", 2, "cancelled"), job("rex2", 3))
    store.store_records("gw", records)
    bodies = store.jobs("gw", "rex1", 10)
    assert [msgspec.json.decode(b)["job_id"] for b in bodies] == ["job-2", "job-1"]
    assert len(store.jobs("gw", None, 10)) == 3
    first = store.add_command(NewCommand(gateway_id="gw", printer_id="rex1", type="pause"), "t1")
    store.add_command(NewCommand(gateway_id="gw", printer_id="rex2", type="pause"), "t2")
    second = store.add_command(
        NewCommand(gateway_id="gw", printer_id="rex1", type="light", params={"on": True}), "t3"
    )
    listed = store.printer_commands("gw", "rex1", 10)
    assert [c.id for c in listed] == [second, first]
    assert listed[1].outcome is None
    store.close()


def test_the_dashboard_spans_gateways_and_says_when_each_was_heard(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with ApiThread(tmp_path / "api.db") as api:
        for gateway in ("barn", "attic"):
            body = {
                "gateway_id": gateway,
                "records": [msgspec.to_builtins(status("rex1", 1))],
            }
            assert api.post("/v1/records", body).status_code == 200
        printers = api.get("/v1/printers").json()["printers"]
        assert [(p["gateway_id"], p["printer_id"]) for p in printers] == [
            ("attic", "rex1"),
            ("barn", "rex1"),
        ]
        heard = datetime.fromisoformat(printers[0]["received_at"])
        assert abs((heard - now).total_seconds()) < 30  # the server's clock, not the record's
        assert printers[0]["ts"].startswith("2026-11-01")
        assert [
            p["gateway_id"] for p in api.get("/v1/printers", gateway_id="barn").json()["printers"]
        ] == ["barn"]


def test_chart_jobs_and_commands_over_http(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        records = [status("rex1", s) for s in range(0, 600, 5)]
        event = Event(id="e1", printer_id="rex1", seq=1, ts=T0, event="print_started")
        body = {
            "gateway_id": "gw",
            "records": msgspec.to_builtins([*records, event, job("rex1", 2)]),
        }
        assert api.post("/v1/records", body).status_code == 200
        chart = api.get(
            "/v1/printers/gw/rex1/statuses",
            since=utc_text(T0),
            until=utc_text(T0 + timedelta(minutes=10)),
            points=20,
        ).json()
        assert chart["columns"] == [
            "ts_ms",
            "state",
            "nozzle",
            "nozzle_target",
            "bed",
            "bed_target",
            "progress",
        ]
        assert 15 <= len(chart["statuses"]) <= 21
        assert chart["statuses"][0][1] == "printing"
        jobs = api.get("/v1/jobs", gateway_id="gw", printer_id="rex1").json()["jobs"]
        assert [j["outcome"] for j in jobs] == ["completed"]
        api.post("/v1/commands", {"gateway_id": "gw", "printer_id": "rex1", "type": "pause"})
        commands = api.get("/v1/printers/gw/rex1/commands").json()["commands"]
        assert [c["type"] for c in commands] == ["pause"]
        for bad in ({"since": "yesterday"}, {"since": "2026-11-01T00:00:00"}, {"points": 0}):
            answer = api.get("/v1/printers/gw/rex1/statuses", **bad)
            assert answer.status_code == 400, bad
        assert requests.get(f"{api.url}/v1/jobs", timeout=5).status_code == 401
        assert requests.get(f"{api.url}/v1/printers/gw/rex1/statuses", timeout=5).status_code == 401


def test_the_web_app_is_at_the_root_and_serves_only_its_own_files(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        home = requests.get(f"{api.url}/", timeout=5)
        assert home.status_code == 200
        assert home.url.endswith("/ui/")
        assert "/assets/app.js" in home.text
        for page in ("/ui/", "/ui/gw", "/ui/gw/rex1"):
            assert requests.get(f"{api.url}{page}", timeout=5).status_code == 200
        script = requests.get(f"{api.url}/assets/app.js", timeout=5)
        assert script.headers["content-type"].startswith("text/javascript")
        for probe in ("../app.py", "..%2Fapp.py", "store.py", "index.html"):
            assert requests.get(f"{api.url}/assets/{probe}", timeout=5).status_code == 404
