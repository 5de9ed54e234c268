"""The reference API server over real HTTP: auth, dedupe, commands with long poll, reads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from tests.support.http import ApiThread


def batch(*records: dict[str, object]) -> dict[str, object]:
    return {"gateway_id": "gw", "records": list(records)}


def status(n: int) -> dict[str, object]:
    """A status of the live lane: no seq, ordered by ts (second n)."""
    return {
        "kind": "status",
        "id": f"s{n}",
        "printer_id": "rex1",
        "seq": None,
        "ts": f"2026-11-23T20:31:{n:02d}Z",
        "state": "printing",
    }


def event(n: int, seq: int) -> dict[str, object]:
    """An event of the reliable lane, with its seq."""
    return {
        "kind": "event",
        "id": f"e{n}",
        "printer_id": "rex1",
        "seq": seq,
        "ts": "2026-11-23T20:31:05Z",
        "event": "printer_online",
    }


def test_auth_is_required_everywhere_but_health(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200
        for method, path in [
            ("GET", "/v1/commands"),
            ("POST", "/v1/records"),
            ("GET", "/v1/records"),
        ]:
            assert requests.request(method, f"{api.url}{path}", timeout=5).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (
                requests.request(method, f"{api.url}{path}", headers=wrong, timeout=5).status_code
                == 401
            )


def test_records_are_deduped_by_id_and_readable(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        assert api.post("/v1/records", batch(event(1, 1), event(2, 2), status(3))).json() == {
            "stored": 3,
            "duplicates": 0,
        }
        assert api.post("/v1/records", batch(event(2, 2), event(3, 3), status(5))).json() == {
            "stored": 2,
            "duplicates": 1,
        }
        api.post("/v1/records", batch(status(4)))  # late: an outage's status, delivered after
        records = api.get("/v1/records", gateway_id="gw", printer_id="rex1").json()["records"]
        assert [(r["id"], r["seq"]) for r in records] == [
            ("s3", None),
            ("s5", None),
            ("s4", None),
            ("e1", 1),
            ("e2", 2),
            ("e3", 3),
        ]
        after = api.get("/v1/records", gateway_id="gw", after_seq=2).json()["records"]
        assert [r["id"] for r in after] == ["e3"]  # paging by seq: the reliable lane only
        printers = api.get("/v1/printers", gateway_id="gw").json()["printers"]
        assert [p["id"] for p in printers] == ["s5"]  # the newest by ts, not the last to arrive


def test_malformed_batch_is_400(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        response = api.post("/v1/records", {"gateway_id": "gw", "records": [{"kind": "status"}]})
        assert response.status_code == 400
        assert "invalid record batch" in response.json()["error"]


def test_commands_long_poll_and_close_on_result(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        assert api.get("/v1/commands", gateway_id="gw").json() == {"commands": []}
        answers: list[tuple[dict[str, list[dict[str, object]]], float]] = []

        def long_poll() -> None:
            began = time.monotonic()
            body = api.get("/v1/commands", gateway_id="gw", wait=10).json()
            answers.append((body, time.monotonic() - began))

        waiter = threading.Thread(target=long_poll)
        waiter.start()
        time.sleep(0.3)
        created = api.post(
            "/v1/commands", {"gateway_id": "gw", "printer_id": "rex1", "type": "pause"}
        )
        assert created.status_code == 201
        command_id = created.json()["id"]
        waiter.join(timeout=10)
        body, took_s = answers[0]
        assert [c["id"] for c in body["commands"]] == [command_id]
        assert body["commands"][0]["params"] == {}
        assert took_s < 5  # answered when the command came, not at the end of the wait
        result = {
            "kind": "command_result",
            "id": "r1",
            "printer_id": "rex1",
            "seq": 1,
            "ts": "2026-11-23T20:31:05Z",
            "command_id": command_id,
            "outcome": "done",
            "detail": "paused",
        }
        api.post("/v1/records", batch(result))
        assert api.get("/v1/commands", gateway_id="gw").json() == {"commands": []}
        assert api.get(f"/v1/commands/{command_id}").json()["outcome"] == "done"


def test_wait_times_out_with_an_empty_list(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        began = time.monotonic()
        assert api.get("/v1/commands", gateway_id="gw", wait=0.5).json() == {"commands": []}
        assert 0.4 < time.monotonic() - began < 5


def test_command_ids_are_unique(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        command = {"gateway_id": "gw", "printer_id": "rex1", "type": "pause", "id": "c-1"}
        assert api.post("/v1/commands", command).status_code == 201
        assert api.post("/v1/commands", command).status_code == 409
        assert api.post("/v1/commands", {"printer_id": "rex1"}).status_code == 400


def test_query_parameters_are_checked(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        api.post("/v1/records", batch(status(1), status(2)))
        for params in ({"limit": -1}, {"limit": 0}, {"limit": "x"}, {"after_seq": -5}):
            assert api.get("/v1/records", gateway_id="gw", **params).status_code == 400, params
        huge = api.get("/v1/records", gateway_id="gw", after_seq="9" * 40)
        assert (huge.status_code, huge.json()) == (200, {"records": []})  # not a 500
        assert len(api.get("/v1/records", gateway_id="gw", limit=10**9).json()["records"]) == 2
        for wait in ("nan", "inf", "-1", "soon"):
            assert api.get("/v1/commands", gateway_id="gw", wait=wait).status_code == 400, wait


def test_bodies_are_bounded_and_commands_validated(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        big = {
            "gateway_id": "gw",
            "printer_id": "rex1",
            "type": "pause",
            "params": {"x": "y" * 70_000},
        }
        assert api.post("/v1/commands", big).status_code == 413
        too_many = b'{"gateway_id": "gw", "records": [' + b" " * (17 * 2**20) + b"]}"
        response = requests.post(
            f"{api.url}/v1/records",
            data=too_many,
            headers={"Authorization": f"Bearer {api.token}"},
            timeout=30,
        )
        assert response.status_code == 413
        command = {"gateway_id": "gw", "printer_id": "rex1", "type": "pause"}
        for bad in (
            {**command, "expires_at": "tomorrow"},
            {**command, "expires_at": "2026-11-30T10:00:00"},  # no time zone
            {**command, "id": "c\n1"},
            {**command, "id": "c1\n"},
            {**command, "id": "x" * 200},
            {**command, "printer_id": ""},
            {**command, "params": [1]},
        ):
            assert api.post("/v1/commands", bad).status_code == 400, bad
        ok = api.post("/v1/commands", {**command, "expires_at": "2026-11-30T12:00:00+02:00"})
        assert ok.status_code == 201
        listed = api.get("/v1/commands", gateway_id="gw").json()["commands"]
        assert listed[0]["expires_at"] == "2026-11-30T10:00:00Z"  # stored as RFC 3339 UTC
        nozzle = {"celsius": 1e300}  # a shape the gateway can read and will reject by its limits
        assert api.post("/v1/commands", {**command, "params": nozzle}).status_code == 201


def test_security_headers_on_every_answer(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        for response in (
            requests.get(f"{api.url}/ui/gw", timeout=5),
            requests.get(f"{api.url}/assets/app.js", timeout=5),
            requests.get(f"{api.url}/healthz", timeout=5),
            requests.get(f"{api.url}/v1/printers", timeout=5),  # a 401 too
        ):
            headers = response.headers
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            policy = headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy
            assert "frame-ancestors 'none'" in policy
            assert "script-src 'self';" in policy  # the app's own file, nothing inline
            assert "unsafe-inline" not in policy


def test_the_page_links_an_icon_that_is_served(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        page = requests.get(f"{api.url}/ui/", timeout=5).text
        assert '<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">' in page
        for path in ("/assets/icon.svg", "/favicon.ico"):  # linked; where browsers look anyway
            answer = requests.get(f"{api.url}{path}", timeout=5)
            assert answer.status_code == 200, path
            assert answer.headers["Content-Type"] == "image/svg+xml"
            assert answer.content.startswith(b"<svg ")
            assert b"<script" not in answer.content
            assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]


def test_the_database_is_private(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        api.post("/v1/records", batch(status(1)))
        for path in tmp_path.glob("api.db*"):
            assert path.stat().st_mode & 0o077 == 0, path


def test_deep_nesting_is_a_400_not_a_500(tmp_path: Path) -> None:
    with ApiThread(tmp_path / "api.db") as api:
        nested = "[" * 3000 + "]" * 3000  # deeper than the decoder recurses, under 8 KiB
        command = '{"gateway_id": "gw", "printer_id": "rex1", "type": "pause", "params": {"a": '
        for path, body in (
            ("/v1/commands", command + nested + "}}"),
            ("/v1/records", '{"gateway_id": "gw", "records": [' + nested + "]}"),
        ):
            response = requests.post(
                f"{api.url}{path}",
                data=body.encode(),
                headers={"Authorization": f"Bearer {api.token}"},
                timeout=10,
            )
            assert response.status_code == 400, (path, response.text)
