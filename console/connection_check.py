"""``printer-gateway check-config --connect``: can this machine reach its printers, its API
and its MQTT broker? Each answer in words an owner can act on.

A printer gets the read-only probe the poller makes (connect, M115, M119, M105, M27, a short
listen for another client's replies, close: no ``~M601``, nothing it would not do anyway),
so the check is safe while the vendor slicer prints. The API gets one authenticated request
(``GET /v1/commands`` with ``wait=0``: it changes nothing); the broker one connection.
Every check has a deadline; none retries.

While this gateway runs (``<data_dir>/gateway.lock`` held, or a poller's service lock), a
printer is not connected to: the REX serves one client, and the check would fight our own
poller for it. Its state comes from the poller's health file instead (its last look), and
the line says so; the API and the broker are checked as always.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import urllib.parse
from dataclasses import dataclass

import requests

from gateway.config import Config, PrinterSection, Token, mqtt_password
from gateway.errors import (
    PrinterIOError,
    PrinterProtocolError,
    PrinterRefusedError,
    PrinterTimeoutError,
    PrinterTurnedAwayError,
    PrinterUnreachableError,
)
from gateway.health import PrinterHealth, read_printers
from gateway.layout import Layout
from gateway.locks import holder
from gateway.redaction import redact, safe
from services.poller.link import PrinterLink
from services.poller.observe import observe, read_info

LISTEN_S = 0.6  # long enough to hear a 2 Hz poller's reply leak into ours


@dataclass(frozen=True)
class Check:
    """One thing checked: what, whether it is fine, and what was found."""

    what: str
    ok: bool
    words: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}: {safe(self.words)}"


async def check_printer(printer: PrinterSection, timeout_s: float) -> Check:
    """The poller's read-only probe, said in words."""
    what = f"printer {printer.id} at {printer.host}:{printer.port}"
    try:
        link = await PrinterLink.open(printer.host, printer.port, timeout_s)
    except PrinterUnreachableError as err:
        return Check(
            what,
            False,
            f"no answer ({err}): is the printer on and on this network, and is "
            f"{printer.host} its address? `printer-gateway discover` finds it",
        )
    except PrinterRefusedError:
        return Check(
            what,
            False,
            f"connection refused: nothing listens on port {printer.port} there (the wrong "
            "address or port?), or another client holds the printer's only connection",
        )
    except PrinterTurnedAwayError:
        return Check(what, False, _held_words())
    except PrinterIOError as err:
        return Check(what, False, f"cannot connect: {err}")
    try:
        info = await read_info(link, timeout_s)
        seen = await observe(link, timeout_s)
        await link.listen(LISTEN_S)
    except PrinterTurnedAwayError:
        return Check(what, False, _held_words())
    except PrinterTimeoutError:
        return Check(
            what, False, "connected, but it does not answer: is this a FlashForge printer?"
        )
    except (PrinterIOError, PrinterProtocolError) as err:
        return Check(what, False, f"connected, but its answers cannot be read: {err}")
    finally:
        await link.close()
    name = " ".join(p for p in (info.name, info.machine_type, info.firmware) if p) or "a printer"
    state = seen.activity.name.lower()
    if link.leaks.foreign:
        return Check(
            what,
            True,
            f"{name}, {state}; another client is polling it too (its replies reach us): "
            "the gateway will say `held_by_other_client` and keep to itself",
        )
    return Check(what, True, f"{name}, {state}, {seen.progress.percent:.0f} %")


def _held_words() -> str:
    return (
        "accepted and closed at once: another client (the vendor slicer, a phone app) holds "
        "the printer's only connection; close it, or let the gateway wait its turn"
    )


def check_api(config: Config, token: Token, timeout_s: float) -> Check:
    """One authenticated, harmless request to the API."""
    url = config.api.url.rstrip("/")
    what = f"API {redact(config.api.url)}"
    headers = {"Authorization": f"Bearer {token.secret.reveal()}"}
    if config.api.flavor == "legacy":  # a single URL, no reading: any HTTP answer will do
        target, params = url, None
        headers = {"key": token.secret.reveal()}
    else:
        target, params = f"{url}/v1/commands", {"gateway_id": config.gateway.id, "wait": "0"}
    try:
        answer = requests.get(target, params=params, headers=headers, timeout=timeout_s)
    except requests.exceptions.SSLError as err:
        return Check(what, False, f"TLS failed ({_reason(err)}): a self-signed certificate?")
    except requests.exceptions.ConnectionError as err:
        text = _reason(err)
        if "Name or service not known" in text or "resolution" in text.lower():
            host = urllib.parse.urlsplit(url).hostname
            return Check(what, False, f"the name {host} cannot be resolved (DNS): {text}")
        if "refused" in text.lower():
            return Check(what, False, "connection refused: nothing listens at that address")
        return Check(what, False, f"cannot connect: {text}")
    except requests.exceptions.Timeout:
        return Check(what, False, f"no answer within {timeout_s:g} s")
    if answer.status_code in (401, 403):
        return Check(
            what,
            False,
            f"HTTP {answer.status_code}: the API refuses the token ({token.source}): is it "
            "the one the API expects?",
        )
    if config.api.flavor == "v1" and answer.status_code != 200:
        return Check(what, False, f"HTTP {answer.status_code}: is this the v1 API's address?")
    return Check(what, True, f"HTTP {answer.status_code}, the token is accepted")


def _reason(err: Exception) -> str:
    """The innermost reason of a requests error, in one line."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    if isinstance(err, ssl.SSLError):
        return err.reason or str(err)
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__


def check_broker(config: Config, timeout_s: float) -> Check | None:
    """One connection to the MQTT broker (None without ``[mqtt]``)."""
    if config.mqtt is None:
        return None
    import paho.mqtt.client as paho  # only here: a gateway without [mqtt] never loads it
    from paho.mqtt.enums import CallbackAPIVersion

    url = urllib.parse.urlsplit(config.mqtt.url)
    what = f"MQTT broker {redact(config.mqtt.url)}"
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect_timeout = timeout_s
    if config.mqtt.username:
        password = mqtt_password(config)
        client.username_pw_set(config.mqtt.username, password.reveal() if password else None)
    if url.scheme == "mqtts":
        client.tls_set()
    answered = threading.Event()
    reasons: list[object] = []

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        reasons.append(reason)
        answered.set()

    client.on_connect = on_connect
    port = url.port or (8883 if url.scheme == "mqtts" else 1883)
    try:
        client.connect(url.hostname or "", port, keepalive=10)
    except ConnectionRefusedError:
        return Check(what, False, "connection refused: no broker listens there")
    except (OSError, ssl.SSLError) as err:
        return Check(what, False, f"cannot connect: {err}")
    client.loop_start()
    try:
        answered.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if not reasons:
        return Check(what, False, f"no answer within {timeout_s:g} s")
    if getattr(reasons[0], "is_failure", False):
        return Check(what, False, f"the broker refused: {reasons[0]} (user and password?)")
    return Check(what, True, "connected")


def our_poller(layout: Layout, printer_id: str) -> str | None:
    """Who of this gateway holds the printer's connection, in words, or None: the gateway
    (``up``: its supervisord holds ``gateway.lock``), or a poller run by hand (its service
    lock). The locks are probed, never taken."""
    gateway = holder(layout.gateway_lock)
    if gateway is not None:
        return f"the gateway is running{_pid(gateway)}: its poller holds the connection"
    for service in ("poller", f"poller-{printer_id}"):
        poller = holder(layout.service_lock(service))
        if poller is not None:
            return (
                f"this gateway's {service} service is running{_pid(poller)}: "
                "it holds the connection"
            )
    return None


def _pid(pid: int) -> str:
    return f" (pid {pid})" if pid else ""


def from_last_look(printer: PrinterSection, running: str, health: PrinterHealth | None) -> Check:
    """A printer our own poller watches, as its health file says (no connection opened)."""
    what = f"printer {printer.id} at {printer.host}:{printer.port}"
    if health is None:
        return Check(
            what,
            False,
            f"{running}, but it has not reported this printer yet: run this again in a minute "
            "(`printer-gateway status` shows it too)",
        )
    contact = f"last contact {health.last_contact}" if health.last_contact else "never reached"
    detail = f" ({health.detail})" if health.detail else ""
    return Check(
        what,
        health.state not in ("offline", "error"),
        f"{running}; state from its last look: {health.state}{detail}, {contact}",
    )


async def _printers(config: Config, timeout_s: float) -> list[Check]:
    layout = Layout.of(config)
    health = {h.printer_id: h for h in read_printers(layout)}
    checks: dict[str, Check] = {}
    probed = []
    for printer in config.printers:
        running = our_poller(layout, printer.id)
        if running is None:
            probed.append(printer)
        else:
            checks[printer.id] = from_last_look(printer, running, health.get(printer.id))
    found = await asyncio.gather(*(check_printer(p, timeout_s) for p in probed))
    checks.update((p.id, check) for p, check in zip(probed, found, strict=True))
    return [checks[p.id] for p in config.printers]


def run(config: Config, token: Token, timeout_s: float) -> int:
    """Check everything, print a line each; 0 when all is well, 1 otherwise."""
    checks = asyncio.run(_printers(config, timeout_s))
    checks.append(check_api(config, token, timeout_s))
    broker = check_broker(config, timeout_s)
    if broker is not None:
        checks.append(broker)
    for check in checks:
        print(check.line())
    return 0 if all(check.ok for check in checks) else 1
