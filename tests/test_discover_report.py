"""console.discover_report: untrusted printer names made safe for a terminal and for TOML, the
printer id derived from them, and the block our config loader accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from console.discover_report import (
    Found,
    merge,
    nothing_found,
    printer_id,
    printers_block,
    table,
    toml_string,
    visible,
)
from gateway.config import parse_config
from gateway.discovery import DiscoveryReply
from gateway.messages import ID_PATTERN

# Anything a terminal would act on rather than show: C0/C1 controls, escape sequences,
# bidirectional overrides, zero-width and line-separator characters.
HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")

HOSTILE_NAMES = [
    "\x1b[2J\x1b[31mREX\x1b[0m",
    "\x1b]52;c;ZWNobyBwd25lZA==\x07clipboard",
    "csi\x9b31m",
    'quote" = 1\n[api]\nurl = "http://evil"',
    "back\\slash\\",
    "rtl\u202egnp.exe",
    "zero\u200bwidth\u2028line",
    "tab\tand\rcr\x00nul\x7fdel",
    "Dr\ufffdcker \ufffd",
    '\'single\' """ triple',
]


def _reply(name: str, fmt: str = "legacy", serial: str = "", port: int = 8899) -> DiscoveryReply:
    return DiscoveryReply(
        format="newer" if fmt == "newer" else "legacy",
        name=name,
        serial=serial,
        command_port=port,
        product_id=0x0008,
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_visible_leaves_nothing_a_terminal_would_act_on(name: str) -> None:
    shown = visible(name)
    assert not HIDDEN.search(shown)
    assert len(shown) == len(name)  # replaced one for one, nothing silently dropped


def test_visible_keeps_ordinary_letters_and_cuts_long_text() -> None:
    assert visible("Drucker Küche 日本 ✓") == "Drucker Küche 日本 ✓"
    assert visible("\x1b[1mREX") == "?[1mREX"
    assert visible("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_toml_string_reads_back_as_the_same_text(name: str) -> None:
    text = visible(name)
    assert tomllib.loads(f"v = {toml_string(text)}") == {"v": text}


def test_toml_string_escapes_even_raw_control_characters() -> None:
    assert toml_string('a"b\\c\x1b\u202e\U000e0001') == '"a\\"b\\\\c\\u001B\\u202E\\U000E0001"'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("REX II #1", "rex-ii-1"),
        ("Bresser REX_flashforged", "bresser-rex-flashforged"),
        ("  Küche: Drucker  ", "kuche-drucker"),
        ("日本", "printer"),
        ("", "printer"),
        ("\x1b[2J", "2j"),
        ("../../etc/passwd", "etc-passwd"),
        ("x" * 100, "x" * 64),
    ],
)
def test_printer_id_keeps_to_the_id_alphabet(name: str, expected: str) -> None:
    assert printer_id(name) == expected
    assert re.match(ID_PATTERN, expected)


def test_printer_id_is_unique_among_those_taken() -> None:
    assert printer_id("REX", ["rex"]) == "rex-2"
    assert printer_id("REX", ["rex", "rex-2"]) == "rex-3"
    long_id = printer_id("y" * 80, ["y" * 64])
    assert long_id == "y" * 62 + "-2"
    assert re.match(ID_PATTERN, long_id)


def test_merge_keeps_one_entry_per_printer_preferring_the_newer_reply() -> None:
    legacy = Found("192.0.2.5", _reply("A"))
    newer = Found("192.0.2.5", _reply("A", "newer", "SN1"))
    other = Found("192.0.2.9", _reply("B"))
    assert merge([legacy, other, newer]) == [newer, other]
    assert merge([newer, legacy]) == [newer]


def test_the_table_shows_each_printer_with_hostile_text_made_visible() -> None:
    found = [Found("192.0.2.5", _reply(name, "newer", serial=name)) for name in HOSTILE_NAMES]
    text = table(found)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "MODEL", "SERIAL", "STATE", "REPLY"]
    assert len(lines) == 1 + len(HOSTILE_NAMES)  # no name added a line
    assert not HIDDEN.search(text.replace("\n", ""))
    assert "Adventurer 3 (0x0008)" in lines[1]


def test_an_unknown_status_shows_its_code() -> None:
    reply = DiscoveryReply(format="legacy", name="A", status_code=9)
    assert "unknown (9)" in table([Found("192.0.2.5", reply)])


def _config_with(block: str) -> str:
    return f'[api]\nurl = "http://127.0.0.1:9"\n\n{block}\n'


def test_the_printers_block_is_accepted_by_the_config_loader(tmp_path: Path) -> None:
    found = [Found("192.0.2.5", _reply("REX II", port=8899)), Found("192.0.2.6", _reply("REX II"))]
    config = parse_config(_config_with(printers_block(found)).encode(), tmp_path)
    assert [(p.id, p.name, p.host, p.port) for p in config.printers] == [
        ("rex-ii", "REX II", "192.0.2.5", 8899),
        ("rex-ii-2", "REX II", "192.0.2.6", 8899),
    ]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_stays_one_value_in_the_block(name: str, tmp_path: Path) -> None:
    block = printers_block([Found("192.0.2.5", _reply(name, "newer", serial=name))])
    document = tomllib.loads(block)
    assert list(document) == ["printers"]  # no table or key smuggled in
    assert document["printers"] == [
        {"id": printer_id(visible(name)), "name": visible(name), "host": "192.0.2.5", "port": 8899}
    ]
    config = parse_config(_config_with(block).encode(), tmp_path)
    assert config.printers[0].name == visible(name)
    assert config.api.url == "http://127.0.0.1:9"


def test_a_reply_without_a_tcp_port_gets_the_default_one() -> None:
    block = printers_block([Found("192.0.2.5", _reply("A", port=0))])
    assert tomllib.loads(block)["printers"][0]["port"] == 8899


def test_nothing_found_names_what_was_tried_and_what_to_check() -> None:
    lan = nothing_found(["225.0.0.9:19000", "255.255.255.255:48899"], unicast=False)
    assert "225.0.0.9:19000" in lan
    for hint in ("same LAN", "firewall", "--to"):
        assert hint in lan
    unicast = nothing_found(["192.0.2.5:19000"], unicast=True)
    assert "without --to" in unicast
