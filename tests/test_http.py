"""The gateway's HTTP client against misbehaving servers: a total deadline, a bounded body,
no redirect followed, failures that never quote a credential."""

from __future__ import annotations

import time

import pytest

from gateway.http import HttpClient, HttpError
from tests.support.http import Reply, hostile_api


def test_a_dripping_answer_is_cut_at_the_total_deadline() -> None:
    with hostile_api() as api:
        api.records = lambda r: Reply(200, b"{}", drip_s=0.3)  # ~30 s for the whole answer
        client = HttpClient({})
        began = time.monotonic()
        with pytest.raises(HttpError, match=r"no complete answer within 1\.5 s"):
            client.exchange("POST", api.url + "/v1/records", body=b"{}", total_s=1.5, max_body=100)
        assert time.monotonic() - began < 3.0
        client.close()


def test_a_huge_answer_is_read_no_further_than_the_cap() -> None:
    with hostile_api() as api:
        api.commands = lambda r: Reply(500, b"oops", padding_bytes=200 * 2**20)
        client = HttpClient({})
        began = time.monotonic()
        answer = client.exchange("GET", api.url + "/x", total_s=10, max_body=4096)
        assert (answer.status, len(answer.body), answer.truncated) == (500, 4096, True)
        with pytest.raises(HttpError, match="answer larger than 4096 bytes"):
            client.exchange("GET", api.url + "/x", total_s=10, max_body=4096, must_fit=True)
        assert time.monotonic() - began < 5.0  # 200 MB were not read
        client.close()


def test_a_redirect_is_not_followed_and_the_token_stays_home() -> None:
    with hostile_api() as elsewhere, hostile_api() as api:
        api.commands = lambda r: Reply(302, b"", {"Location": elsewhere.url + "/steal"})
        client = HttpClient({"Authorization": "Bearer secret-token-1234"})
        answer = client.exchange("GET", api.url + "/v1/commands", total_s=5, max_body=100)
        client.close()
    assert answer.status == 302
    assert elsewhere.requests == []


def test_a_refused_connection_is_an_http_error_without_the_url_secrets() -> None:
    client = HttpClient({})
    with pytest.raises(HttpError) as caught:
        client.exchange("GET", "http://127.0.0.1:9/v1?token=hunter22", total_s=2, max_body=10)
    client.close()
    assert "hunter22" not in str(caught.value)
    assert "connection failed" in str(caught.value)


def test_kept_alive_connections_are_watched_too() -> None:
    with hostile_api() as api:
        client = HttpClient({})
        assert client.exchange("GET", api.url + "/a", total_s=5, max_body=100).status == 200
        api.commands = lambda r: Reply(200, b"{}", drip_s=0.3)
        with pytest.raises(HttpError, match="no complete answer"):
            client.exchange("GET", api.url + "/b", total_s=1, max_body=100)
        client.close()
