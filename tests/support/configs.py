"""One factory for gateway configs: TOML text with every file under one root directory.

``printers`` maps a printer id to its port on 127.0.0.1 (polled every 0.2 s and probed
every 0.3 s: a simulator test's pace) or to the keys of its ``[[printers]]`` table (host
127.0.0.1 unless given; every other key the config's default). ``gateway_id`` (default
"gw"), ``api_url`` (default a port nobody answers on) and ``token`` (default "t") are the
usual keys; any other key of a table goes in that table's mapping (``api=``, ``control=``,
``limits=``, ...). ``None`` leaves a key out. ``data_dir`` is ``<root>/data`` and
``runtime_dir`` ``<root>/run``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict, Unpack

from gateway.config import Config, load_config, parse_config

Value = str | int | float | bool | Path | Sequence[str] | Mapping[str, str] | None
Table = Mapping[str, Value]
Printers = Mapping[str, int | Table]

FAST_PRINTER: Table = {"host": "127.0.0.1", "poll_interval_s": 0.2, "probe_interval_s": 0.3}


class Keys(TypedDict, total=False):
    """What a config may say besides its printers."""

    gateway_id: str | None
    api_url: str
    token: str | None
    gateway: Table
    api: Table
    limits: Table
    control: Table
    uplink: Table
    notify: Table
    mqtt: Table
    metrics: Table


def config_toml(root: Path, printers: Printers, **keys: Unpack[Keys]) -> str:
    """The TOML text of a gateway config (see the module's docstring)."""
    tables: dict[str, Table] = {
        "gateway": {
            "id": keys.get("gateway_id", "gw"),
            "data_dir": root / "data",
            "runtime_dir": root / "run",
            **keys.get("gateway", {}),
        },
        "api": {
            "url": keys.get("api_url", "http://127.0.0.1:9"),
            "token": keys.get("token", "t"),
            **keys.get("api", {}),
        },
    }
    more = {
        "limits": keys.get("limits"),
        "control": keys.get("control"),
        "uplink": keys.get("uplink"),
        "notify": keys.get("notify"),
        "mqtt": keys.get("mqtt"),
        "metrics": keys.get("metrics"),
    }
    tables.update({name: table for name, table in more.items() if table is not None})
    text = "".join(_table(f"[{name}]", table) for name, table in tables.items())
    for printer_id, printer in printers.items():
        table = {**FAST_PRINTER, "port": printer} if isinstance(printer, int) else printer
        text += _table("[[printers]]", {"id": printer_id, "host": "127.0.0.1", **table})
    return text


def write_config(
    root: Path, printers: Printers, *, name: str = "gateway.toml", **keys: Unpack[Keys]
) -> Path:
    """Write the config to ``root/name``; its path."""
    path = root / name
    path.write_text(config_toml(root, printers, **keys))
    return path


def make_config(root: Path, printers: Printers, **keys: Unpack[Keys]) -> Config:
    """The Config, parsed as if its file were in root (nothing is written)."""
    return parse_config(config_toml(root, printers, **keys).encode(), root)


def written_config(
    root: Path, printers: Printers, *, name: str = "gateway.toml", **keys: Unpack[Keys]
) -> tuple[Path, Config]:
    """Write the config, then load it as a service would: its path and its Config."""
    path = write_config(root, printers, name=name, **keys)
    return path, load_config(path)


def _table(header: str, keys: Table) -> str:
    lines = [f"{key} = {_value(value)}\n" for key, value in keys.items() if value is not None]
    return f"{header}\n" + "".join(lines)


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    assert value is not None
    if isinstance(value, Mapping):  # an inline table of strings
        return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(json.dumps(item) for item in value) + "]"


class ConfigFactory:
    """The factory bound to one root directory (a test's tmp_path: the ``configs`` fixture)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def toml(self, printers: Printers, **keys: Unpack[Keys]) -> str:
        """The config's text."""
        return config_toml(self.root, printers, **keys)

    def make(self, printers: Printers, **keys: Unpack[Keys]) -> Config:
        """The Config, nothing written."""
        return make_config(self.root, printers, **keys)

    def write(
        self, printers: Printers, *, name: str = "gateway.toml", **keys: Unpack[Keys]
    ) -> Path:
        """The config written to root/name: its path."""
        return write_config(self.root, printers, name=name, **keys)

    def written(
        self, printers: Printers, *, name: str = "gateway.toml", **keys: Unpack[Keys]
    ) -> tuple[Path, Config]:
        """The config written to root/name and loaded: its path and its Config."""
        return written_config(self.root, printers, name=name, **keys)
