"""Posting claimed batches to ``{url}/v1/records`` and sorting every outcome.

2xx: delivered. 408, 429, 5xx, connection errors, timeouts, redirects: retry later (honouring
``Retry-After``, seconds or an HTTP date). Any other 4xx: refused for good (dead letter).
One ``requests.Session`` (keep-alive), explicit connect/read timeouts, TLS verified.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from dataclasses import dataclass

import msgspec
import requests

from gateway.config import Secret
from services.uplink.queue import Batch

MAX_RETRY_AFTER_S = 3600.0


class Verdict(enum.Enum):
    """What to do with a batch after one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class Answer:
    """One attempt's verdict, the server's requested delay if any, and why."""

    verdict: Verdict
    reason: str
    retry_after_s: float | None = None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER_S)


class Backoff:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**n)); reset on success."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        self.failures += 1
        return random.uniform(0.0, ceiling)

    def reset(self) -> None:
        """A success: start again from the base."""
        self.failures = 0


class Deliverer:
    """Posts batches for one gateway to one API."""

    def __init__(self, url: str, token: Secret, gateway_id: str, timeout_s: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/records"
        self.timeout = (min(timeout_s, 10.0), timeout_s)
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json"}
        )
        self._prefix = b'{"gateway_id":' + msgspec.json.encode(gateway_id) + b',"records":['

    def post(self, batch: Batch) -> Answer:
        """One attempt to deliver a batch; never raises for network or HTTP trouble."""
        body = self._prefix + b",".join(batch.bodies) + b"]}"
        sent = post_once(
            self.session, self.endpoint, body, self.timeout, {"Idempotency-Key": batch.batch_id}
        )
        return sent if isinstance(sent, Answer) else classify_response(sent)

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def post_once(
    session: requests.Session,
    url: str,
    body: bytes,
    timeout: tuple[float, float],
    headers: dict[str, str] | None = None,
) -> requests.Response | Answer:
    """POST once without following redirects: the response, or a RETRY answer saying why
    there is none (timeout, connection or other request failure)."""
    try:
        return session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return Answer(Verdict.RETRY, "timed out")
    except requests.ConnectionError as err:
        return Answer(Verdict.RETRY, f"connection failed: {type(err).__name__}")
    except requests.RequestException as err:
        return Answer(Verdict.RETRY, f"request failed: {type(err).__name__}")


def classify_response(response: requests.Response) -> Answer:
    """Sort a response into delivered / retry / refused (see ``classify``)."""
    return classify(response.status_code, response.headers.get("Retry-After"), response.text[:200])


def classify(status: int, retry_after_header: str | None, text: str) -> Answer:
    """Sort an HTTP status into delivered / retry / refused."""
    if 200 <= status < 300:
        return Answer(Verdict.DELIVERED, f"HTTP {status}")
    reason = f"HTTP {status}: {text.strip()}" if text.strip() else f"HTTP {status}"
    if status in (408, 429) or status >= 500 or status < 200 or 300 <= status < 400:
        return Answer(Verdict.RETRY, reason, retry_after(retry_after_header))
    return Answer(Verdict.REFUSED, reason)
