"""The gateway's TOML configuration (architecture §4.1), decoded into frozen, typed structs.

Unknown keys are rejected and every bound is declared on the field, so a bad file fails at
start with one line naming the key path (``printers[0].port``) and the problem. Relative
``data_dir`` / ``runtime_dir`` paths and every ``*_file`` key are resolved against the
config file's directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import msgspec.inspect

from gateway.errors import ConfigError
from gateway.messages import MAX_TEXT, EventName, Identifier
from gateway.redaction import (
    SECRET_QUERY_KEY,
    redact,
    register_secret,
    register_url_credentials,
    register_url_secrets,
)
from gateway.templates import template_problem

CONFIG_ENV = "PRINTER_GATEWAY_CONFIG"
TOKEN_ENV = "PRINTER_GATEWAY_TOKEN"
MQTT_PASSWORD_ENV = "PRINTER_GATEWAY_MQTT_PASSWORD"
DEFAULT_CONFIG_PATH = Path("gateway.toml")

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


def _default_gateway_id() -> str:
    """The host name, reduced to the id alphabet: stable per box and distinct between boxes."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip("-._")[:64]
    return name or "gateway"


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config table: immutable, unknown keys rejected."""


class GatewaySection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[gateway]``: who this gateway is and where it keeps its files."""

    id: Annotated[Identifier, msgspec.Meta(description="names this gateway to the API")] = (
        msgspec.field(default_factory=_default_gateway_id)
    )
    data_dir: Annotated[str, msgspec.Meta(description="durable queue, journals, ledger")] = (
        "/var/lib/printer-gateway"
    )
    runtime_dir: Annotated[str, msgspec.Meta(description="ipc sockets, pid and health files")] = (
        "/run/printer-gateway"
    )


class ApiSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[api]``: where records go and commands come from."""

    url: Annotated[str, msgspec.Meta(description="the API, http:// or https://")]
    token_file: Annotated[
        str | None,
        msgspec.Meta(description="file holding the API token; relative: from the config's folder"),
    ] = None
    token: Annotated[str | None, msgspec.Meta(description="the API token itself")] = None
    flavor: Annotated[
        Literal["v1", "legacy"],
        msgspec.Meta(description="v1 records API or the original connector's"),
    ] = "v1"
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300, description="per HTTP request")] = 10.0


class PrinterSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One ``[[printers]]`` entry. An empty id becomes ``printer<N>``, an empty name the id."""

    host: Annotated[
        str, msgspec.Meta(min_length=1, max_length=253, description="the printer's address")
    ]
    id: Annotated[Identifier, msgspec.Meta(description="stable id; default printer<N>")] = ""
    name: Annotated[
        str, msgspec.Meta(max_length=MAX_TEXT, description="display name; default the id")
    ] = ""
    port: Annotated[Port, msgspec.Meta(description="the printer's TCP port")] = 8899
    probe_interval_s: Annotated[
        float, msgspec.Meta(gt=0, le=3600, description="idle: connect, look, let go this often")
    ] = 30.0
    poll_interval_s: Annotated[
        float, msgspec.Meta(gt=0, le=60, description="printing or paused: poll this often")
    ] = 1.0
    camera_url: Annotated[
        str,
        msgspec.Meta(
            max_length=2048,
            description='MJPEG stream for snapshots; "" = http://<host>:8080/?action=stream '
            'when it answers, "off" = none',
        ),
    ] = ""

    def camera(self) -> str | None:
        """The camera to try for a snapshot, or None when it is off."""
        if self.camera_url == "off":
            return None
        return self.camera_url or f"http://{_url_host(self.host)}:8080/?action=stream"


class LimitsSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[limits]``: commands outside these are rejected and never reach the printer."""

    max_nozzle_c: Annotated[
        int, msgspec.Meta(ge=0, le=300, description="highest nozzle target a command may set")
    ] = 240
    max_bed_c: Annotated[
        int, msgspec.Meta(ge=0, le=150, description="highest bed target a command may set")
    ] = 100


class ControlSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[control]``: how long a fetched command may wait before it is expired."""

    command_ttl_s: Annotated[
        float,
        msgspec.Meta(gt=0, le=86400, description="a command not run this long after fetch expires"),
    ] = 120.0


class UplinkSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[uplink]``: the durable queue's hard disk cap, and how statuses are kept on disk
    while the API is not keeping up."""

    max_queue_mb: Annotated[
        int, msgspec.Meta(ge=1, le=1_000_000, description="disk cap; oldest statuses go first")
    ] = 64
    offline_status_interval_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            le=86400,
            description="API not keeping up: one status per printer this often on disk, "
            "plus every change of state",
        ),
    ] = 10.0


DEFAULT_NOTIFY_EVENTS: tuple[EventName, ...] = (
    "print_started",
    "print_finished",
    "print_cancelled",
    "print_paused",
    "printer_lost_while_printing",
)


class NotifySection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[notify]``: Apprise URLs and the events that trigger a notification."""

    urls: Annotated[
        tuple[str, ...], msgspec.Meta(description="Apprise URLs (discord://, tgram://, ...)")
    ] = ()
    events: Annotated[tuple[EventName, ...], msgspec.Meta(description="events that notify")] = (
        DEFAULT_NOTIFY_EVENTS
    )
    templates: Annotated[
        dict[EventName, Annotated[str, msgspec.Meta(max_length=2000)]],
        msgspec.Meta(
            description='message per event, e.g. "{printer}: {file} finished in {duration}" '
            "(fields: printer, file, state, progress, duration, eta, outcome)"
        ),
    ] = msgspec.field(default_factory=dict)
    snapshot: Annotated[
        bool,
        msgspec.Meta(description="attach a camera snapshot to finished, cancelled and paused"),
    ] = True


# Levels of plain characters: no MQTT wildcard, no empty level, no leading "$" (the broker's
# own topics).
TOPIC_PATTERN = r"^[A-Za-z0-9_.-][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$(?!\n)"
TopicPrefix = Annotated[str, msgspec.Meta(pattern=TOPIC_PATTERN)]


class MqttSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[mqtt]`` (optional): the MQTT bridge and Home Assistant discovery."""

    url: Annotated[
        str, msgspec.Meta(description="the broker: mqtt://host:1883, mqtts:// for TLS")
    ] = "mqtt://127.0.0.1:1883"
    username: Annotated[str, msgspec.Meta(max_length=256, description="broker user")] = ""
    password_file: Annotated[
        str,
        msgspec.Meta(
            description=f"file holding the broker password ({MQTT_PASSWORD_ENV} wins); "
            "relative: from the config's folder"
        ),
    ] = ""
    topic_prefix: Annotated[TopicPrefix, msgspec.Meta(description="first topic level(s)")] = (
        "printer-gateway"
    )
    discovery_prefix: Annotated[
        TopicPrefix | Literal[""],
        msgspec.Meta(description='Home Assistant discovery prefix; "" = no discovery'),
    ] = "homeassistant"
    commands: Annotated[
        bool, msgspec.Meta(description="accept commands on <prefix>/<gateway>/<printer>/command")
    ] = True


class MetricsSection(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[metrics]`` (optional): Prometheus metrics (docs/metrics.md)."""

    listen: Annotated[
        str,
        msgspec.Meta(
            max_length=300,
            description='"host:port" serving GET /metrics, e.g. "127.0.0.1:9464"; "" = off',
        ),
    ] = ""


class Config(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole configuration file, after defaults and normalisation."""

    gateway: GatewaySection = msgspec.field(default_factory=GatewaySection)
    api: ApiSection
    printers: Annotated[
        tuple[PrinterSection, ...], msgspec.Meta(min_length=1, description="one table per printer")
    ]
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    control: ControlSection = msgspec.field(default_factory=ControlSection)
    uplink: UplinkSection = msgspec.field(default_factory=UplinkSection)
    notify: NotifySection = msgspec.field(default_factory=NotifySection)
    mqtt: MqttSection | None = None
    metrics: MetricsSection | None = None

    def printer(self, printer_id: str) -> PrinterSection:
        """The printer with this id; ConfigError naming ``printers`` if there is none."""
        for printer in self.printers:
            if printer.id == printer_id:
                return printer
        raise ConfigError("printers", f"no printer with id {printer_id!r}")


class Secret:
    """A value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (an HTTP header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__


class Token(msgspec.Struct, frozen=True):
    """The API token and where it came from (for check-config and status)."""

    secret: Secret
    source: str


def find_config_path(cli_value: str | None) -> Path:
    """``--config``, else ``$PRINTER_GATEWAY_CONFIG``, else ``./gateway.toml``."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    """Read, decode and validate a config file; any problem is a ConfigError naming the key."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError("", f"cannot read config file {path}: {err.strerror}") from err
    return parse_config(raw, base_dir=path.resolve().parent)


def parse_config(raw: bytes, base_dir: Path) -> Config:
    """Decode TOML bytes into a normalised Config; relative paths are taken from base_dir."""
    try:
        config = msgspec.toml.decode(raw, type=Config)
    except msgspec.ValidationError as err:
        raise _config_error_from_validation(str(err)) from err
    except msgspec.DecodeError as err:
        raise ConfigError("", f"not valid TOML: {err}") from err
    return _normalise(config, base_dir)


def resolve_token(config: Config, environ: dict[str, str] | None = None) -> Token:
    """The API token: $PRINTER_GATEWAY_TOKEN, then ``api.token_file``, then ``api.token``."""
    env = os.environ if environ is None else environ
    from_env = env.get(TOKEN_ENV, "").strip()
    if from_env:
        return _sendable(Token(Secret(from_env), f"environment variable {TOKEN_ENV}"), TOKEN_ENV)
    if config.api.token_file is not None:
        path = Path(config.api.token_file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError("api.token_file", f"cannot read {path}: {err}") from err
        if not value:
            raise ConfigError("api.token_file", f"{path} is empty")
        return _sendable(Token(Secret(value), f"file {path}"), "api.token_file")
    if config.api.token:
        return _sendable(Token(Secret(config.api.token), "api.token"), "api.token")
    raise ConfigError("api.token", f"no API token: set {TOKEN_ENV}, api.token_file or api.token")


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+\Z")  # what an HTTP header carries as is


def sendable_token(value: str) -> bool:
    """Whether every request can carry `value`: printable ASCII, no spaces (else each request
    would fail to encode, for ever, after a clean start)."""
    return bool(_TOKEN_CHARS.match(value))


def _sendable(token: Token, key: str) -> Token:
    if not sendable_token(token.secret.reveal()):
        raise ConfigError(key, "the token must be printable ASCII without spaces")
    return token


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES


def in_clear_text(url: str) -> bool:
    """Whether a request to `url` carries its token readable on the way: plain http:// to
    anything but this machine."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "http" and not _is_loopback(parts.hostname or "")


def _readable_by_others(path: Path) -> int | None:
    """The file's mode when group or others may read it, else None (also when missing)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o044 else None


def _has_credentials(url: str) -> bool:
    """A password in the URL, or a query parameter whose name says it is a secret."""
    parts = urllib.parse.urlsplit(url)
    keys = (key for key, _ in urllib.parse.parse_qsl(parts.query))
    return bool(parts.password) or any(SECRET_QUERY_KEY.search(key) for key in keys)


def security_warnings(config: Config, config_path: Path) -> list[str]:
    """What in this config exposes a secret: readable token or notification URLs, a token
    sent in clear text over the network, a guessable token. One sentence each."""
    warnings = []
    config_mode = _readable_by_others(config_path)
    exposed = [
        name
        for name, present in (
            ("api.token", bool(config.api.token)),
            ("the credentials in api.url", _has_credentials(config.api.url)),
            ("notify.urls (they embed secrets)", bool(config.notify.urls)),
        )
        if present
    ]
    if config_mode is not None and exposed:
        warnings.append(
            f"{', '.join(exposed)} in {config_path}, which other users can read "
            f"(mode {config_mode:o}): chmod 600 it (the token can live in api.token_file)"
        )
    if config.api.token_file:
        mode = _readable_by_others(Path(config.api.token_file))
        if mode is not None:
            warnings.append(
                f"api.token_file {config.api.token_file} can be read by other users "
                f"(mode {mode:o}): chmod 600 it"
            )
    if in_clear_text(config.api.url):
        host = urllib.parse.urlsplit(config.api.url).hostname
        warnings.append(
            f"api.url sends the token in clear text to {host}: use https:// "
            "(anyone on the network path can read it)"
        )
    try:
        token = resolve_token(config).secret.reveal()
    except ConfigError:
        token = None
    if token is not None and len(token) < 16:
        warnings.append(f"the API token is only {len(token)} characters: use 16 or more")
    return warnings


def register_secrets(config: Config) -> None:
    """Tell the redaction routine every secret this config holds (token, URL credentials,
    notification URLs), so no log line, status or stored reason can show them."""
    try:
        register_secret(resolve_token(config).secret.reveal())
    except ConfigError:
        pass  # no token: nothing to hide
    register_url_credentials(config.api.url)
    for url in config.notify.urls:
        register_url_secrets(url)
    for printer in config.printers:  # a camera URL may carry a password or a query token
        register_url_credentials(printer.camera_url)
    if config.mqtt is not None:
        register_url_credentials(config.mqtt.url)
        try:
            password = mqtt_password(config)
        except ConfigError:
            password = None  # reported where it is needed
        if password is not None:
            register_secret(password.reveal())


def redacted(config: Config) -> Config:
    """The config with the inline token and the notification URLs (they embed secrets)
    hidden, safe to print."""
    api = config.api
    if api.token is not None:
        api = msgspec.structs.replace(api, token="<redacted>")
    api = msgspec.structs.replace(api, url=redact(api.url))
    urls = tuple(f"{url.split('://', 1)[0]}://<redacted>" for url in config.notify.urls)
    notify = msgspec.structs.replace(config.notify, urls=urls)
    printers = tuple(  # a camera URL may carry a user and password, or a token in its query
        msgspec.structs.replace(p, camera_url=redact(p.camera_url)) for p in config.printers
    )
    mqtt = config.mqtt
    if mqtt is not None:
        mqtt = msgspec.structs.replace(mqtt, url=redact(mqtt.url))
    return msgspec.structs.replace(config, api=api, notify=notify, printers=printers, mqtt=mqtt)


_AT_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<key>[^`]+)`")


def _config_error_from_validation(message: str) -> ConfigError:
    """Turn msgspec's "<problem> - at `$.a[0].b`" into ConfigError("a[0].b", problem)."""
    match = _AT_PATH.match(message)
    problem = match["problem"] if match else message
    path = ((match["path"] if match else None) or "").lstrip(".")
    field = _FIELD.match(problem)
    if field:
        path = f"{path}.{field['key']}" if path else field["key"]
        problem = "unknown key" if field["what"] == "contains unknown" else "required key missing"
    if problem.startswith("Invalid enum value"):
        choices = _choices_at(path)
        if choices:
            problem += f" (one of: {', '.join(choices)})"
    return ConfigError(path, problem[:1].lower() + problem[1:])


def _choices_at(path: str) -> tuple[str, ...]:
    """The allowed values of the Literal-typed key at ``path`` (e.g. ``notify.events[1]``)."""
    node: msgspec.inspect.Type = msgspec.inspect.type_info(Config)
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        node = unwrap(node)
        if isinstance(node, msgspec.inspect.StructType) and not part.startswith("["):
            node = next((f.type for f in node.fields if f.name == part), msgspec.inspect.AnyType())
        elif isinstance(node, msgspec.inspect.CollectionType) and part.startswith("["):
            node = node.item_type
        else:
            return ()
    node = unwrap(node)
    if isinstance(node, msgspec.inspect.LiteralType):
        return tuple(sorted(str(value) for value in node.values))
    return ()


def unwrap(node: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The type under any ``Annotated`` metadata."""
    while isinstance(node, msgspec.inspect.Metadata):
        node = node.type
    return node


def mqtt_password(config: Config, environ: dict[str, str] | None = None) -> Secret | None:
    """The broker password: $PRINTER_GATEWAY_MQTT_PASSWORD, else ``mqtt.password_file``, else
    none; ConfigError naming the key when the file cannot be read."""
    env = os.environ if environ is None else environ
    if config.mqtt is None:
        return None
    from_env = env.get(MQTT_PASSWORD_ENV, "").strip()
    if from_env:
        return Secret(from_env)
    if not config.mqtt.password_file:
        return None
    path = Path(config.mqtt.password_file)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("mqtt.password_file", f"cannot read {path}: {err}") from err
    return Secret(value) if value else None


def _url_host(host: str) -> str:
    """A host as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _normalise(config: Config, base_dir: Path) -> Config:
    check_api_url(config.api.url)
    if config.mqtt is not None:
        parts = urllib.parse.urlsplit(config.mqtt.url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                "mqtt.url", f"{config.mqtt.url!r} is not mqtt:// or mqtts:// with a host"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as err:
            raise ConfigError("mqtt.url", str(err)) from err
    if config.metrics is not None and config.metrics.listen:
        listen_address(config.metrics.listen)  # raises ConfigError naming metrics.listen
    for event, template in config.notify.templates.items():
        problem = template_problem(template)
        if problem is not None:
            raise ConfigError(f"notify.templates.{event}", problem)
    for index, printer in enumerate(config.printers):
        camera = printer.camera_url
        if camera not in ("", "off") and urllib.parse.urlsplit(camera).scheme not in (
            "http",
            "https",
        ):
            raise ConfigError(
                f"printers[{index}].camera_url", 'an http:// or https:// URL, "" or "off"'
            )
    printers = []
    seen: dict[str, int] = {}
    for index, printer in enumerate(config.printers):
        printer_id = printer.id or f"printer{index + 1}"
        if printer_id in seen:
            raise ConfigError(
                f"printers[{index}].id",
                f"{printer_id!r} is already used by printers[{seen[printer_id]}]",
            )
        seen[printer_id] = index
        printers.append(
            msgspec.structs.replace(printer, id=printer_id, name=printer.name or printer_id)
        )
    gateway = msgspec.structs.replace(
        config.gateway,
        data_dir=_absolute(config.gateway.data_dir, base_dir, "gateway.data_dir"),
        runtime_dir=_absolute(config.gateway.runtime_dir, base_dir, "gateway.runtime_dir"),
    )
    # Every *_file key, like the directories, is taken from the config file's directory
    # (not from wherever the command was typed); "" stays "" (none).
    api = config.api
    if api.token_file:
        api = msgspec.structs.replace(api, token_file=_file_path(api.token_file, base_dir))
    mqtt = config.mqtt
    if mqtt is not None and mqtt.password_file:
        mqtt = msgspec.structs.replace(mqtt, password_file=_file_path(mqtt.password_file, base_dir))
    return msgspec.structs.replace(
        config, gateway=gateway, api=api, mqtt=mqtt, printers=tuple(printers)
    )


def listen_address(listen: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9464"`` for IPv6) as (host, port); ConfigError naming
    ``metrics.listen`` when it is not one."""
    host, sep, port_text = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    problem = None
    if not sep or not host or any(c.isspace() for c in host) or "/" in host:
        problem = "is not host:port"
    elif not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        problem = "needs a port from 1 to 65535"
    elif ":" in host or bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            problem = "is not a bracketed IPv6 address and port"
        if not bracketed:
            problem = "needs brackets around an IPv6 address"
    if problem is not None:
        raise ConfigError("metrics.listen", f"{listen!r} {problem} (e.g. 127.0.0.1:9464)")
    return host, int(port_text)


def check_api_url(url: str) -> None:
    """ConfigError naming ``api.url`` unless `url` is http:// or https:// with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("api.url", f"{url!r} is not an http:// or https:// URL with a host")


def _file_path(value: str, base_dir: Path) -> str:
    """A file named in the config, absolute: a relative one from the config file's folder."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base_dir / path)


def _absolute(value: str, base_dir: Path, key: str) -> str:
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve())
