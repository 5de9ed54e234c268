"""The one redaction routine: registered secrets in every encoding, credential shapes,
escaping of untrusted text, and the logging formatter that applies both."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from gateway import redaction
from gateway.logs import SafeFormatter
from gateway.redaction import REDACTED, WITHHELD, escape, quoted, redact, safe

TOKEN = "tok/en+with=odd&chars-9f8e7d6c"


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    redaction.register_secret(TOKEN)
    yield
    redaction.forget_secrets()


@pytest.mark.parametrize(
    "echo",
    [
        TOKEN,
        f"Bearer {TOKEN}",
        urllib.parse.quote(TOKEN, safe=""),
        urllib.parse.quote_plus(TOKEN),
        TOKEN.replace("/", "\\/"),  # as a JSON encoder may write it
        base64.b64encode(TOKEN.encode()).decode(),
        base64.urlsafe_b64encode(TOKEN.encode()).decode(),
        base64.b64encode(f"Bearer {TOKEN}".encode()).decode(),  # any alignment
        base64.b64encode(f"Authorization: Bearer {TOKEN}".encode()).decode(),
        TOKEN.upper(),
        TOKEN.encode().hex(),
        f"{TOKEN[:12]}\n{TOKEN[12:]}",  # split across lines
        f"{TOKEN[:10]} {TOKEN[10:]}",  # cut in two
        "".join(f"%{b:02x}" for b in TOKEN.encode()),  # every byte percent-encoded
        base64.b32encode(f"Bearer {TOKEN}".encode()).decode(),
    ],
)
def test_every_echo_of_a_registered_secret_is_hidden(echo: str) -> None:
    _assert_hidden(TOKEN, echo)


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: json.dumps(v)[1:-1],  # \u00e4 escapes, as json.dumps writes them
        lambda v: urllib.parse.quote(v).lower(),
        lambda v: "".join(f"%{b:02X}" for b in v.encode()),
    ],
)
def test_a_non_ascii_secret_is_hidden_in_escaped_forms(encode: Callable[[str], str]) -> None:
    secret = "pässwörd+/=ümläüt/éèêë+çàâ=ñõøå"
    redaction.register_secret(secret)
    _assert_hidden(secret, encode(secret))
    _assert_hidden(encode(secret), encode(secret))  # not 8 characters of the escaped form


def _assert_hidden(secret: str, echo: str) -> None:
    page = f'<pre>{{"headers": {{"X": "{echo}"}}}}</pre>'
    cleaned = redact(page)
    assert secret not in cleaned
    assert echo not in cleaned
    windows = {secret[i : i + 8] for i in range(len(secret) - 7)}
    assert not [w for w in windows if w in cleaned]  # not even 8 characters of it


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ('{"Authorization": "Bearer abc.def-123"}', "abc.def-123"),
        ("authorization: basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("key: legacy-key-value", "legacy-key-value"),
        ("x-api-key=zzz999", "zzz999"),
        ("https://user:hunter2@api.example.org/v1", "hunter2"),
        ("GET /v1/commands?gateway_id=gw&token=s3cr3t&wait=25", "s3cr3t"),
        ("see ?api_key=abcdef#frag", "abcdef"),
    ],
)
def test_credential_shapes_are_hidden_even_when_not_registered(text: str, hidden: str) -> None:
    cleaned = redact(text)
    assert hidden not in cleaned
    assert REDACTED in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "HTTP 503: upstream busy, retry in 5 s (printer rex1, 42 %)"
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    redaction.register_secret("ab")
    assert redact("a lab about tabs") == "a lab about tabs"


def test_url_secrets_of_apprise_urls() -> None:
    redaction.register_url_secrets("tgram://123456789:AAbbCCddEEffGGhhIIjj/987654")
    assert "AAbbCCddEEffGGhhIIjj" not in redact("sending to 123456789:AAbbCCddEEffGGhhIIjj")


def test_escape_makes_one_printable_line() -> None:
    forged = "c-1\n2026-11-30 INFO control: command c-2 done\r\x1b[2J\x07\u202e\u2028ok"
    escaped = escape(forged)
    assert escaped.isprintable()
    assert "\\x0a" in escaped
    assert "\\x1b[2J" in escaped
    assert "\\u202e" in escaped
    assert escape("nozzle 210 °C, file Bénchy.gx") == "nozzle 210 °C, file Bénchy.gx"


def test_safe_bounds_the_length() -> None:
    assert len(safe("x" * 10_000, limit=50)) == 50


def _fail() -> None:
    raise RuntimeError(f"boom {TOKEN}")


def test_the_log_formatter_redacts_and_escapes_every_message() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("server said %s for command %s", f"Bearer {TOKEN}", "c\nFORGED")
        try:
            _fail()
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output
    assert "c\\x0aFORGED" in output
    assert "\nFORGED" not in output
    assert "| Traceback" in output  # tracebacks keep their lines, redacted and quoted
    assert all(line.startswith(("WARNING ", "ERROR ", "| ")) for line in output.splitlines())


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: "".join(f"\\u{ord(c):04x}" for c in v),  # every character escaped
        lambda v: "".join(f"\\u{ord(c):04X}" for c in v),
        lambda v: "".join(f"&#{ord(c)};" for c in v),  # HTML entities
        lambda v: "".join(f"&#x{ord(c):x};" for c in v),
        lambda v: "".join(f"\\x{ord(c):02x}" for c in v),
        lambda v: "".join(f"\\{ord(c):o}" for c in v),  # octal
        lambda v: "".join(f"={ord(c):02X}" for c in v),  # quoted-printable
        lambda v: ":".join(f"{ord(c):02x}" for c in v),  # hex with separators
        lambda v: " ".join(f"{ord(c):02x}" for c in v),
        lambda v: v[::-1],
        lambda v: "\u200d".join(v),  # zero-width joiners
        lambda v: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v),  # full width
    ],
)
def test_a_secret_in_an_encoding_that_cannot_be_cut_out_is_withheld_whole(
    encode: Callable[[str], str],
) -> None:
    echo = "debug: " + encode(f"Bearer {TOKEN}")
    assert quoted(echo) == WITHHELD
    assert safe(echo) == WITHHELD
    assert quoted("upstream busy, request 0193a4c2-77f1 failed") != WITHHELD
