"""Posting claimed batches to ``{url}/v1/records`` and sorting every outcome.

2xx: delivered. 408, 429, 5xx, connection errors, timeouts, redirects: retry later
(honouring ``Retry-After``, seconds or an HTTP date). 401/403: the API refuses the
credentials, a condition of the whole gateway: nothing is dead-lettered, the caller keeps
trying at least every 15 s (a token fixed on the server works without a restart). 413: the
batch is too large: split it. 400/422: the server finds something in the batch invalid:
split it too, so one bad record is refused alone instead of taking its batch with it (a
single record refused so is dead-lettered). Any other 4xx: the batch is refused for good
(dead letter). Every reason is redacted and escaped: a server may echo the Authorization
header in its error page.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from dataclasses import dataclass

import msgspec

from gateway.config import Secret
from gateway.http import HttpAnswer, HttpClient, HttpError
from gateway.redaction import quoted, safe
from services.uplink.queue import Batch

MAX_RETRY_AFTER_S = 600.0  # a server may pause delivery, not for hours
ERROR_BODY_BYTES = 4096  # of an error page, kept for the reason (the rest is dropped)
_SECONDS = re.compile(r"[0-9]+\Z")


class Disposition(enum.Enum):
    """What to do with a batch after one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    UNAUTHORIZED = "unauthorized"  # 401/403: keep the batch, retry, report the condition
    SPLIT = "split"  # 413/400/422: halve the batch; a single record is dead-lettered
    REFUSED = "refused"  # other 4xx: dead-letter the batch


@dataclass(frozen=True)
class PostResult:
    """One attempt's disposition, the server's requested delay if any, and why (safe to show).
    ``unreadable``: indexes of records the poster could not even read (legacy flavor); they
    are dead-lettered alone while the rest of the batch is settled by the disposition."""

    disposition: Disposition
    reason: str
    retry_after_s: float | None = None
    unreadable: tuple[int, ...] = ()
    status: int | None = None  # the HTTP status, when there was an answer


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()[:64]
    if _SECONDS.match(value):  # ASCII digits only: "²".isdigit() is True, float("²") fails
        return min(float(value[:12]), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
        delay = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None  # not a delay we can read: the caller's own backoff applies
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


class Deliverer:
    """Posts batches for one gateway to one API."""

    def __init__(self, url: str, token: Secret, gateway_id: str, timeout_s: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/records"
        self.timeout_s = timeout_s
        self.client = HttpClient(
            {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json"}
        )
        self._prefix = b'{"gateway_id":' + msgspec.json.encode(gateway_id) + b',"records":['

    def post(self, batch: Batch) -> PostResult:
        """One attempt to deliver a batch; never raises for network or HTTP trouble."""
        body = self._prefix + b",".join(batch.bodies) + b"]}"
        return post_once(
            self.client, self.endpoint, body, self.timeout_s, {"Idempotency-Key": batch.batch_id}
        )

    def close(self) -> None:
        """Close the session's connections."""
        self.client.close()


def post_once(
    client: HttpClient,
    url: str,
    body: bytes,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> PostResult:
    """POST once (no redirect followed, `timeout_s` for the whole exchange) and classify."""
    try:
        answer = client.exchange(
            "POST", url, body=body, headers=headers, total_s=timeout_s, max_body=ERROR_BODY_BYTES
        )
    except HttpError as err:
        return PostResult(Disposition.RETRY, safe(str(err)))
    return classify_answer(answer)


def classify_answer(answer: HttpAnswer) -> PostResult:
    """Sort an HTTP answer into dispositions (see ``classify``)."""
    return classify(answer.status, answer.headers.get("Retry-After"), answer.text())


def classify(status: int, retry_after_header: str | None, text: str) -> PostResult:
    """Sort an HTTP status into a disposition; the reason quotes the server, made safe."""
    if 200 <= status < 300:
        return PostResult(Disposition.DELIVERED, f"HTTP {status}", status=status)
    text = quoted(text.strip())  # an error page may echo the Authorization header
    reason = safe(f"HTTP {status}: {text}" if text else f"HTTP {status}")
    if status in (408, 429) or status >= 500 or status < 200 or 300 <= status < 400:
        return PostResult(Disposition.RETRY, reason, retry_after(retry_after_header), status=status)
    if status in (401, 403):
        return PostResult(Disposition.UNAUTHORIZED, reason, status=status)
    if status in (400, 413, 422):
        return PostResult(Disposition.SPLIT, reason, status=status)
    return PostResult(Disposition.REFUSED, reason, status=status)
