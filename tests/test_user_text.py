"""What users read never cites a section of a design document they do not have
("architecture §4.2" pointed outside the repository): `--help`, the shipped docs, the
example config, supervisord.conf and the web app name the repository's own files instead.
Comments and docstrings for developers may keep their references."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from console.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "docs").glob("*.json")),
    *sorted((REPO / "reference_api" / "web").iterdir()),
    REPO / "README.md",
    REPO / "gateway.example.toml",
    REPO / "supervisord.conf",
]


def _helps(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, str]]:
    found = [(name, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                found += _helps(sub, f"{name} {verb}")
    return found


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_text_cites_no_section_sign(path: Path) -> None:
    if path.suffix in (".png", ".ico"):
        return
    lines = [
        f"{number}: {line}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "§" in line
    ]
    assert not lines, f"{path.name} cites sections users cannot follow: {lines}"


def test_help_cites_no_section_sign() -> None:
    helps = _helps(build_parser(), "printer-gateway")
    assert len(helps) > 10  # every verb's own --help too
    assert not [name for name, text in helps if "§" in text]
