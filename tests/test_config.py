"""Config: defaults, normalisation, token resolution, and a table of bad files."""

from __future__ import annotations

from pathlib import Path

import msgspec.inspect as mi
import pytest

from gateway.config import (
    DEFAULT_NOTIFY_EVENTS,
    TOKEN_ENV,
    Config,
    find_config_path,
    listen_address,
    load_config,
    mqtt_password,
    parse_config,
    redacted,
    resolve_token,
    unwrap,
)
from gateway.errors import ConfigError

MINIMAL = b'[api]\nurl = "https://printers.example.org/api"\ntoken = "t0ken"\n[[printers]]\nhost = "192.0.2.5"\n'
REPO = Path(__file__).resolve().parents[1]


def test_minimal_file_gets_every_default(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, base_dir=tmp_path)
    printer = config.printers[0]
    assert (printer.id, printer.name, printer.port) == ("printer1", "printer1", 8899)
    assert (printer.probe_interval_s, printer.poll_interval_s) == (30.0, 1.0)
    assert config.api.flavor == "v1"
    assert config.api.timeout_s == 10.0
    assert (config.limits.max_nozzle_c, config.limits.max_bed_c) == (240, 100)
    assert config.control.command_ttl_s == 120.0
    assert config.uplink.max_queue_mb == 64
    assert config.notify.urls == ()
    assert config.notify.events == DEFAULT_NOTIFY_EVENTS
    assert config.gateway.data_dir == "/var/lib/printer-gateway"
    assert config.gateway.id


def test_example_file_is_valid() -> None:
    config = load_config(REPO / "gateway.example.toml")
    assert [p.id for p in config.printers] == ["rex1"]
    assert config.printer("rex1").name == "REX #1"


def test_relative_dirs_are_taken_from_the_config_file(tmp_path: Path) -> None:
    raw = MINIMAL + b'[gateway]\ndata_dir = "data"\nruntime_dir = "~/run"\n'
    (tmp_path / "g.toml").write_bytes(raw)
    config = load_config(tmp_path / "g.toml")
    assert config.gateway.data_dir == str(tmp_path.resolve() / "data")
    assert config.gateway.runtime_dir == str(Path("~/run").expanduser())


def test_relative_files_are_taken_from_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "token").write_text("from-the-config-folder\n")
    (etc / "mqtt-password").write_text("broker-secret\n")
    raw = MINIMAL.replace(b'token = "t0ken"', b'token_file = "token"') + (
        b'[mqtt]\npassword_file = "mqtt-password"\n'
    )
    (etc / "gateway.toml").write_bytes(raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "token").write_text("the-wrong-one\n")
    monkeypatch.chdir(elsewhere)  # where the command was typed: not where the files are
    config = load_config(Path("../etc/gateway.toml"))
    assert config.api.token_file == str(etc.resolve() / "token")
    assert config.mqtt is not None
    assert config.mqtt.password_file == str(etc.resolve() / "mqtt-password")
    assert resolve_token(config, {}).secret.reveal() == "from-the-config-folder"
    password = mqtt_password(config, {})
    assert password is not None
    assert password.reveal() == "broker-secret"


def test_every_file_key_is_taken_from_the_config_file() -> None:
    """A new ``*_file`` key must be resolved in ``_normalise`` too (and listed here)."""

    def file_keys(node: mi.Type, prefix: str) -> list[str]:
        node = unwrap(node)
        if isinstance(node, mi.UnionType):
            return [k for t in node.types for k in file_keys(t, prefix)]
        if isinstance(node, mi.CollectionType):
            return file_keys(node.item_type, f"{prefix}[]")
        if isinstance(node, mi.StructType):
            return [
                k
                for f in node.fields
                for k in (
                    [f"{prefix}{f.name}"]
                    if f.name.endswith("_file")
                    else file_keys(f.type, f"{prefix}{f.name}.")
                )
            ]
        return []

    assert sorted(file_keys(mi.type_info(Config), "")) == ["api.token_file", "mqtt.password_file"]


def test_second_printer_gets_its_own_default_id(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + b'[[printers]]\nhost = "192.0.2.6"\n', base_dir=tmp_path)
    assert [p.id for p in config.printers] == ["printer1", "printer2"]


BAD_FILES = [
    ("syntax", b"[api\nurl=1", "", "not valid TOML"),
    ("no api", b'[[printers]]\nhost = "h"\n', "api", "required key missing"),
    ("no url", b'[api]\ntoken="t"\n[[printers]]\nhost = "h"\n', "api.url", "required key missing"),
    ("no printers", b'[api]\nurl = "http://h"\n', "printers", "required key missing"),
    ("empty printers", b'printers = []\n[api]\nurl = "http://h"\n', "printers", "length >= 1"),
    (
        "no host",
        b'[api]\nurl="http://h"\n[[printers]]\nid="a"\n',
        "printers[0].host",
        "required key missing",
    ),
    (
        "empty host",
        b'[api]\nurl="http://h"\n[[printers]]\nhost=""\n',
        "printers[0].host",
        "length >= 1",
    ),
    ("unknown top", b"colour = 1\n" + MINIMAL, "colour", "unknown key"),
    ("unknown nested", MINIMAL + b"foo = 1\n", "printers[0].foo", "unknown key"),
    (
        "unknown section key",
        MINIMAL + b"[limits]\nmax_chamber_c = 1\n",
        "limits.max_chamber_c",
        "unknown key",
    ),
    ("port zero", MINIMAL + b"port = 0\n", "printers[0].port", ">= 1"),
    ("port too big", MINIMAL + b"port = 70000\n", "printers[0].port", "<= 65535"),
    ("port float", MINIMAL + b"port = 88.5\n", "printers[0].port", "expected `int`"),
    ("port string", MINIMAL + b'port = "8899"\n', "printers[0].port", "expected `int`"),
    ("probe zero", MINIMAL + b"probe_interval_s = 0\n", "printers[0].probe_interval_s", "> 0"),
    ("poll negative", MINIMAL + b"poll_interval_s = -1\n", "printers[0].poll_interval_s", "> 0"),
    ("bad printer id", MINIMAL + b'id = "rex 1"\n', "printers[0].id", "regex"),
    (
        "duplicate id",
        MINIMAL + b'id = "a"\n[[printers]]\nhost="h2"\nid="a"\n',
        "printers[1].id",
        "already used",
    ),
    ("bad gateway id", MINIMAL + b'[gateway]\nid = "a:b"\n', "gateway.id", "regex"),
    (
        "empty data dir",
        MINIMAL + b'[gateway]\ndata_dir = " "\n',
        "gateway.data_dir",
        "must not be empty",
    ),
    (
        "bad flavor",
        MINIMAL.replace(b"[api]\n", b'[api]\nflavor = "v2"\n'),
        "api.flavor",
        "one of: legacy, v1",
    ),
    (
        "timeout zero",
        MINIMAL.replace(b"[api]\n", b"[api]\ntimeout_s = 0\n"),
        "api.timeout_s",
        "> 0",
    ),
    ("url scheme", MINIMAL.replace(b"https://", b"ftp://"), "api.url", "not an http"),
    (
        "url no host",
        MINIMAL.replace(b"https://printers.example.org/api", b"https:///api"),
        "api.url",
        "with a host",
    ),
    ("nozzle limit", MINIMAL + b"[limits]\nmax_nozzle_c = 400\n", "limits.max_nozzle_c", "<= 300"),
    ("bed limit", MINIMAL + b"[limits]\nmax_bed_c = -5\n", "limits.max_bed_c", ">= 0"),
    ("ttl zero", MINIMAL + b"[control]\ncommand_ttl_s = 0\n", "control.command_ttl_s", "> 0"),
    ("queue cap", MINIMAL + b"[uplink]\nmax_queue_mb = 0\n", "uplink.max_queue_mb", ">= 1"),
    (
        "notify event",
        MINIMAL + b'[notify]\nevents = ["print_started", "exploded"]\n',
        "notify.events[1]",
        "one of: print_cancelled, print_finished,",
    ),
    (
        "notify urls type",
        MINIMAL + b'[notify]\nurls = "json://x"\n',
        "notify.urls",
        "expected `array`",
    ),
    (
        "metrics no port",
        MINIMAL + b'[metrics]\nlisten = "127.0.0.1"\n',
        "metrics.listen",
        "host:port",
    ),
    ("metrics no host", MINIMAL + b'[metrics]\nlisten = ":9464"\n', "metrics.listen", "host:port"),
    (
        "metrics port",
        MINIMAL + b'[metrics]\nlisten = "127.0.0.1:99999"\n',
        "metrics.listen",
        "port from 1 to 65535",
    ),
    (
        "metrics port text",
        MINIMAL + b'[metrics]\nlisten = "localhost:http"\n',
        "metrics.listen",
        "port from 1 to 65535",
    ),
    (
        "metrics ipv6",
        MINIMAL + b'[metrics]\nlisten = "::1:9464"\n',
        "metrics.listen",
        "brackets",
    ),
    ("metrics type", MINIMAL + b"[metrics]\nlisten = 9464\n", "metrics.listen", "expected `str`"),
    ("metrics key", MINIMAL + b"[metrics]\nport = 9464\n", "metrics.port", "unknown key"),
]


@pytest.mark.parametrize(
    ("raw", "path", "problem"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_bad_file_names_the_key(tmp_path: Path, raw: bytes, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path)
    assert caught.value.path == path
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")


def test_token_order_env_then_file_then_inline(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    raw = MINIMAL.replace(b"[api]\n", f'[api]\ntoken_file = "{token_file}"\n'.encode())
    config = parse_config(raw, base_dir=tmp_path)
    assert resolve_token(config, {TOKEN_ENV: "from-env"}).secret.reveal() == "from-env"
    from_file = resolve_token(config, {})
    assert from_file.secret.reveal() == "from-file"
    assert str(token_file) in from_file.source
    inline = resolve_token(parse_config(MINIMAL, base_dir=tmp_path), {})
    assert (inline.secret.reveal(), inline.source) == ("t0ken", "api.token")


@pytest.mark.parametrize(
    ("api_lines", "path", "problem"),
    [
        (b'token_file = "/nonexistent/token"\n', "api.token_file", "cannot read"),
        (b"", "api.token", "no API token"),
        ('token = "pässwörd-1234567"\n'.encode(), "api.token", "printable ASCII"),
        (b'token = "two words here"\n', "api.token", "without spaces"),
    ],
)
def test_token_problems_name_the_key(
    tmp_path: Path, api_lines: bytes, path: str, problem: str
) -> None:
    raw = MINIMAL.replace(b'token = "t0ken"\n', b"").replace(b"[api]\n", b"[api]\n" + api_lines)
    with pytest.raises(ConfigError) as caught:
        resolve_token(parse_config(raw, base_dir=tmp_path), {})
    assert (caught.value.path, problem in caught.value.problem) == (path, True)


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  \n")
    raw = MINIMAL.replace(b'token = "t0ken"', f'token_file = "{tmp_path / "token"}"'.encode())
    with pytest.raises(ConfigError, match="empty"):
        resolve_token(parse_config(raw, base_dir=tmp_path), {})


def test_token_never_shows_itself(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, base_dir=tmp_path)
    token = resolve_token(config, {})
    assert "t0ken" not in repr(token)
    assert "t0ken" not in str(token.secret)
    assert "t0ken" not in repr(redacted(config))


def test_config_path_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRINTER_GATEWAY_CONFIG", "/etc/pg.toml")
    assert find_config_path("/x.toml") == Path("/x.toml")
    assert find_config_path(None) == Path("/etc/pg.toml")
    monkeypatch.delenv("PRINTER_GATEWAY_CONFIG")
    assert find_config_path(None) == Path("gateway.toml")


def test_configuration_reference_is_current() -> None:
    from console.config_doc import table

    document = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert table() in document, "docs/configuration.md is stale: run `make schema`"


def test_configuration_reference_says_patterns_in_words() -> None:
    from console.config_doc import table

    text = table()
    for regex_only in ("(?!", "^[", "]*", "$`"):
        assert regex_only not in text
    assert "1 to 64 letters, digits, `_` `.` `-`, starting with a letter or digit" in text
    assert "topic levels split by `/`" in text


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_metrics_listen_is_host_and_port(
    tmp_path: Path, listen: str, address: tuple[str, int]
) -> None:
    config = parse_config(MINIMAL + f'[metrics]\nlisten = "{listen}"\n'.encode(), base_dir=tmp_path)
    assert config.metrics is not None
    assert listen_address(config.metrics.listen) == address


def test_metrics_are_off_unless_configured(tmp_path: Path) -> None:
    assert parse_config(MINIMAL, base_dir=tmp_path).metrics is None
    config = parse_config(MINIMAL + b"[metrics]\n", base_dir=tmp_path)
    assert config.metrics is not None
    assert config.metrics.listen == ""
