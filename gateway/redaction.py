"""Making text safe to show: secrets redacted, untrusted text escaped. One routine for all.

Secrets (the API token, notification URLs) are registered by the process that knows them
(``register_secret``). ``redact`` then hides **every run of 8 consecutive characters of a
secret** (``WINDOW``), in the forms a server or a proxy's debug page might echo it in: as
is, upper- and lower-case, URL-, JSON-, hex- and base64-encoded (base64 at each of the three
alignments, so the token inside ``base64("Bearer " + token)`` is found too). Matching
windows rather than the whole value also catches a secret split across lines or cut in
pieces of 8 or more. Whatever was registered, anything that looks like a credential is
hidden too: an ``Authorization`` / ``key`` header echoed back, a ``Bearer`` value, the
user:password part of a URL, secret-looking query parameters.

``escape`` makes text from outside (a printer, an API, a command, a file name) one printable
line: control and format characters become ``\\xNN`` / ``\\uNNNN``, so nobody can forge a log
line or send escape codes to a terminal. ``safe`` does both and bounds the length: what a
reason stored in the queue, shown by ``status`` or logged should go through.

The logging formatter (``gateway.logs``) applies ``redact`` and ``escape`` to every message,
so a forgotten call site still cannot leak a registered token or forge a line.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import unicodedata
import urllib.parse

REDACTED = "<redacted>"
SECRET_QUERY_KEY = re.compile(r"(?i)token|key|secret|pass|auth|sig")  # names of secret values
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words; check-config warns
WINDOW = 8  # no run of this many characters of a secret, in any form below, is ever shown
_lock = threading.Lock()
_windows: frozenset[str] = frozenset()  # every WINDOW-long slice of every form
_short: tuple[str, ...] = ()  # forms shorter than WINDOW, matched whole

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


def _forms(value: str) -> set[str]:
    """The value as a server might echo it: as is, in other case, and encoded."""
    raw = value.encode()
    every_byte = "".join(f"%{b:02X}" for b in raw)
    json_escaped = json.dumps(value)[1:-1]  # \uXXXX for non-ASCII, as most encoders write
    forms = {
        value,
        value.upper(),
        value.lower(),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        every_byte,
        every_byte.lower(),
        _lower_escapes(urllib.parse.quote(value, safe="")),
        value.replace("\\", "\\\\").replace('"', '\\"').replace("/", "\\/"),
        json_escaped,
        json_escaped.replace("/", "\\/"),
        _upper_escapes(json_escaped),
        raw.hex(),
        raw.hex().upper(),
    }
    # base64 and base32 at every alignment: what came before the value in the encoded text
    # shifts its bytes within the blocks. Only the characters made of the value's bytes
    # alone are kept: not the first block (shared with what came before), not the last
    # partial one (shared with what follows).
    for encode, block, chars in (
        (base64.b64encode, 3, 4),
        (base64.urlsafe_b64encode, 3, 4),
        (base64.b32encode, 5, 8),
    ):
        for shift in range(block):
            encoded = encode(b"\0" * shift + raw).decode()
            kept = encoded[chars if shift else 0 : (shift + len(raw)) // block * chars]
            forms |= {kept, kept.lower()}
    return {form for form in forms if form}


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _upper_escapes(text: str) -> str:
    return re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group()[2:].upper(), text)


def register_secret(value: str) -> None:
    """Redact this value (and its common encodings) from everything shown from now on."""
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    forms = _forms(value)
    windows = {
        f[i : i + WINDOW] for f in forms if len(f) >= WINDOW for i in range(len(f) - WINDOW + 1)
    }
    short = {f for f in forms if len(f) < WINDOW and len(f) >= MIN_SECRET_LENGTH}
    global _windows, _short
    with _lock:
        _windows = _windows | windows
        _short = tuple(sorted({*_short, *short}, key=len, reverse=True))


def register_url_secrets(url: str) -> None:
    """A URL that may embed secrets in any part (Apprise: ``tgram://<bot token>/<chat>``):
    its password, every query value and every component of 16 characters or more (a host
    like 127.0.0.1 or a short path stays readable)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    for _, value in urllib.parse.parse_qsl(parts.query):
        register_secret(value)
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
        if SECRET_QUERY_KEY.search(key):
            register_secret(value)


def forget_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _windows, _short
    with _lock:
        _windows, _short = frozenset(), ()


def redact(text: str) -> str:
    """The text with registered secrets and credential-shaped values replaced."""
    windows, short = _windows, _short
    hidden: list[tuple[int, int]] = []
    if windows:
        hidden += [
            (i, i + WINDOW)
            for i in range(len(text) - WINDOW + 1)
            if text[i : i + WINDOW] in windows
        ]
    for form in short:
        start = text.find(form)
        while start >= 0:
            hidden.append((start, start + len(form)))
            start = text.find(form, start + 1)
    if hidden:
        text = _cut(text, hidden)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with every span (merged where they touch) replaced by REDACTED."""
    pieces, position = [], 0
    for start, end in sorted(spans):
        if start > position:
            pieces += [text[position:start], REDACTED]
        elif not pieces:
            pieces.append(REDACTED)
        position = max(position, end)
    pieces.append(text[position:])
    return "".join(pieces)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """One printable line: control, format and separator characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def escape_json(text: str) -> str:
    """JSON text with every non-printable character (a bidi override, a line separator,
    C1 controls) written as a ``\\uXXXX`` escape: still the same JSON, but one line that
    cannot reorder or move a terminal's text. (C0 controls are escaped by any JSON encoder.)"""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _json_escape(c) for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a surrogate pair, as JSON requires
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


WITHHELD = "<withheld: it quoted a secret in an encoding>"
_JS_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|x([0-9A-Fa-f]{2})|([0-7]{1,3}))")
_QUOTED_PRINTABLE = re.compile(r"=([0-9A-Fa-f]{2})")
_HEX_RUN = re.compile(r"(?:[0-9A-Fa-f]{2}[\s:,.\-]?){8,}")


def _unescape_js(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        hex4, hex2, octal = match.groups()
        return chr(int(hex4 or hex2, 16) if (hex4 or hex2) else int(octal, 8) & 0xFF)

    return _JS_ESCAPE.sub(one, text)


def _hex_runs(text: str) -> str:
    """Runs of hex byte pairs (``70:42:...``, a hexdump) decoded, one per line."""
    return "\n".join(
        bytes.fromhex(re.sub(r"[^0-9A-Fa-f]", "", run)[: len(run) // 2 * 2]).decode("latin-1")
        for run in _HEX_RUN.findall(text)
    )


def _decodings(text: str) -> list[str]:
    """The text as it reads once common per-character encodings are undone: JS/JSON escapes
    (\\uXXXX, \\xNN, octal), HTML entities, percent- and quoted-printable escapes, runs of hex
    bytes, compatibility forms (full-width) with invisible characters dropped, reversed."""
    undone = _unescape_js(html.unescape(urllib.parse.unquote(text)))
    undone = _QUOTED_PRINTABLE.sub(lambda m: chr(int(m[1], 16)), undone.replace("=\n", ""))
    visible = "".join(
        c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf"
    )
    return [undone, visible, text[::-1], _hex_runs(text)]


def reveals_secret(text: str) -> bool:
    """Whether the text holds 8 characters of a registered secret in some form ``redact``
    cannot cut out in place (every character escaped, entities, a hexdump, ...)."""
    windows = _windows
    if not windows:
        return False
    return any(
        decoded[i : i + WINDOW] in windows
        for decoded in _decodings(text)
        for i in range(len(decoded) - WINDOW + 1)
    )


def quoted(text: str) -> str:
    """Text from elsewhere (a server's error page) to quote in a reason: redacted, or
    withheld whole when it holds a secret in a form redaction cannot cut out."""
    cleaned = redact(text)
    return WITHHELD if reveals_secret(cleaned) else cleaned


def safe(text: str, limit: int | None = 300) -> str:
    """``quoted``, escaped and at most `limit` characters (None: any length): fit for a log,
    status or the queue."""
    cleaned = quoted(text)
    if cleaned == WITHHELD:
        return WITHHELD
    cleaned = escape(cleaned)
    return cleaned if limit is None or len(cleaned) <= limit else cleaned[: limit - 1] + "…"
