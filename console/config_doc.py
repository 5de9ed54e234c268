"""The key-by-key table of ``docs/configuration.md``, generated from the config structs (their
types, bounds, defaults and descriptions): ``python -m console.config_doc --write FILE``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from gateway.config import TOPIC_PATTERN, Config, unwrap
from gateway.messages import ID_PATTERN

BEGIN = "<!-- generated table: python -m console.config_doc -->"
END = "<!-- end of generated table -->"
_DEFAULTS = {"gateway.id": "the host name, reduced to the id alphabet"}
# Every pattern a key is checked against, in words: a reader should not have to read a
# regular expression (a new pattern without words here stops the generator).
PATTERN_WORDS = {
    ID_PATTERN: "1 to 64 letters, digits, `_` `.` `-`, starting with a letter or digit",
    TOPIC_PATTERN: "topic levels split by `/`, each one or more letters, digits, `_` `.` `-` "
    "(no wildcards, no empty level)",
}


def _describe(node: mi.Type) -> str:
    node = unwrap(node)
    match node:
        case mi.IntType() | mi.FloatType():
            name = "integer" if isinstance(node, mi.IntType) else "number"
            low = (
                f"{node.ge} <= "
                if node.ge is not None
                else (f"{node.gt} < " if node.gt is not None else "")
            )
            high = (
                f" <= {node.le}"
                if node.le is not None
                else (f" < {node.lt}" if node.lt is not None else "")
            )
            return f"{low}{name}{high}" if low or high else name
        case mi.StrType(pattern=str(pattern)):
            if pattern not in PATTERN_WORDS:
                raise ValueError(f"say {pattern!r} in words in console.config_doc.PATTERN_WORDS")
            return f"string: {PATTERN_WORDS[pattern]}"
        case mi.StrType(min_length=int(low)) if low > 0:
            return "non-empty string"
        case mi.StrType():
            return "string"
        case mi.LiteralType():
            return " or ".join(f'`"{value}"`' for value in node.values)
        case mi.UnionType():
            return (
                " or ".join(_describe(t) for t in node.types if not isinstance(t, mi.NoneType))
                + " (optional)"
            )
        case mi.CollectionType():
            return f"list of {_describe(node.item_type)}"
        case mi.BoolType():
            return "boolean"
        case mi.DictType():
            return f"table of {_describe(node.value_type)} by event"
    return type(node).__name__


def _description(node: mi.Type) -> str:
    if isinstance(node, mi.Metadata) and node.extra_json_schema:
        return str(node.extra_json_schema.get("description", ""))
    return ""


def _default(key: str, field: mi.Field) -> str:
    if key in _DEFAULTS:
        return _DEFAULTS[key]
    if field.required:
        return "**required**"
    value: Any = (
        field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    )
    if value == "" and key.endswith(".id"):
        return "`printer<N>` (position, from 1)"
    if value == "" and key == "printers.name":
        return "the id"
    if value == "":
        return '`""`'
    return f"`{msgspec.json.encode(value).decode()}`"


def rows() -> Iterator[str]:
    """One table row per leaf key."""
    config = unwrap(mi.type_info(Config))
    assert isinstance(config, mi.StructType)
    for section in config.fields:
        table = unwrap(section.type)
        prefix = section.name
        if isinstance(table, mi.CollectionType):
            table, prefix = unwrap(table.item_type), f"{section.name}[]"
        if isinstance(table, mi.UnionType):  # an optional section: absent = off
            table = next(unwrap(t) for t in table.types if not isinstance(t, mi.NoneType))
        assert isinstance(table, mi.StructType)
        for field in table.fields:
            key = f"{prefix}.{field.name}"
            default = _default(key.replace("[]", ""), field)
            yield f"| `{key}` | {_describe(field.type)} | {default} | {_description(field.type)} |"


def table() -> str:
    """The Markdown table between its markers."""
    return "\n".join(
        [BEGIN, "| key | type, bounds | default | meaning |", "|---|---|---|---|", *rows(), END]
    )


def updated(document: str) -> str:
    """The document with the text between the markers replaced by the current table."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + table() + tail


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        path = Path(sys.argv[2])
        path.write_text(updated(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(table() + "\n")
