"""Making text safe to show: secrets redacted, untrusted text escaped. One routine for all.

Secrets (the API token, notification URLs) are registered by the process that knows them
(``register_secret``), in the exact form and the encodings a server or proxy might echo
them in (URL-, JSON-, base64-encoded). ``redact`` hides those and, whatever was
registered, anything that looks like a credential: an ``Authorization`` / ``key`` header
echoed back, a ``Bearer`` value, the user:password part of a URL, secret-looking query
parameters. ``escape`` makes text from outside (a printer, an API, a command, a file name)
one printable line: control and format characters become ``\\xNN`` / ``\\uNNNN``, so nobody
can forge a log line or send escape codes to a terminal. ``safe`` does both and bounds the
length: what a reason stored in the queue, shown by ``status`` or logged should go through.

The logging formatter (``gateway.logs``) applies ``redact`` and ``escape`` to every message,
so a forgotten call site still cannot leak a registered token or forge a line.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words; check-config warns
_lock = threading.Lock()
_variants: tuple[str, ...] = ()

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer x", '"authorization": "x"', "key=x" (the legacy header), ...
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]?key|\bkey|\btoken|"
            r"\bpassword|\bsecret)(\"?'?\s*[:=]\s*\"?'?)"
            r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;}&]+"
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 " + REDACTED),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@"), r"\1" + REDACTED + "@"),
    # ?token=..., &api_key=..., &sig=...
    (
        re.compile(
            r"(?i)([?&;](?:token|key|api_?key|access_token|auth|password|passwd|pwd|secret|"
            r"sig|signature)=)[^&#\s\"']+"
        ),
        r"\1" + REDACTED,
    ),
)


def register_secret(value: str) -> None:
    """Redact this value (and its common encodings) from everything shown from now on."""
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        value.replace("\\", "\\\\").replace('"', '\\"').replace("/", "\\/"),
        base64.b64encode(value.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    }
    global _variants
    with _lock:
        _variants = tuple(sorted({*_variants, *forms}, key=len, reverse=True))


def register_url_secrets(url: str) -> None:
    """A URL that embeds secrets anywhere (Apprise: ``tgram://<bot token>/<chat>``): the
    whole URL, its password, and every long component are registered."""
    register_secret(url)
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    for piece in re.split(r"[/:@?&=#]+", url.split("://", 1)[-1]):
        if len(piece) >= 16:
            register_secret(piece)


def register_url_credentials(url: str) -> None:
    """An http(s) URL whose host and path are no secret: its password and the values of
    secret-looking query parameters are."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    for key, value in urllib.parse.parse_qsl(parts.query):
        if re.search(r"(?i)token|key|secret|pass|auth|sig", key):
            register_secret(value)


def forget_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _variants
    with _lock:
        _variants = ()


def redact(text: str) -> str:
    """The text with registered secrets and credential-shaped values replaced."""
    for variant in _variants:
        if variant in text:
            text = text.replace(variant, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """One printable line: control, format and separator characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def safe(text: str, limit: int = 300) -> str:
    """Redacted, escaped and at most `limit` characters: fit for a log, status or the queue."""
    cleaned = escape(redact(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
