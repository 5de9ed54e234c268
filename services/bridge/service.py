"""The MQTT bridge (architecture §2, §4.6): every printer as Home Assistant (or anything on
MQTT) should see it, and commands from MQTT, without anyone else opening the printer.

Theory of operation
-------------------
* **What it publishes** is what the uplink accepts: it listens on the uplink's tap (every
  record the uplink takes, statuses included) and publishes each record to its printer's
  topic (``topics.publication``): the latest status retained on ``state``, events and job
  records on ``event``, command results on ``command_result``. It never opens a printer
  socket and never waits on the uplink: the tap is a PUB socket that drops rather than
  blocks, and a broker that is down only means nothing is published.
* **The connection** is paho-mqtt's network thread (MQTT 5, reconnecting with a backoff from
  1 to 60 s). The will is ``offline``, retained, on ``P/G/availability``; every (re)connect
  publishes ``online`` retained, the Home Assistant discovery of every configured printer,
  the latest state seen of each (a broker restarted without persistence catches up at
  once), and removes the discovery of printers no longer in the config (found among the
  retained discovery messages of this gateway). ``D/status`` saying ``online`` (Home
  Assistant restarted) sends discovery again.
* **Commands** on ``P/G/R/command`` go to control through the socket the legacy 418 uses
  (``bus.CommandInjector``), so they pass the same checks, ``[limits]``, ledger (a repeated
  id runs once; an id is made when the message has none), TTL, and get one result, which
  reaches the API as a record and MQTT through the tap. A **retained** command is never run
  (the subscription asks the broker for the retain flag as published): it is cleared from
  the broker, so a restart of Home Assistant or of the bridge cannot pause a print again.
  A message that cannot be read gets a ``rejected`` result on ``command_result`` at once.
* paho's callbacks run on its thread: they only hand over to the event loop, which owns
  the injector and all state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import msgspec
import zmq
import zmq.asyncio

from gateway import runner
from gateway.bus import CommandInjector
from gateway.config import Config, mqtt_password
from gateway.health import BridgeHealth, Problems, write_bridge
from gateway.layout import Layout
from gateway.messages import (
    DECODE_ERRORS,
    CommandResult,
    PrinterInfo,
    Status,
    json_encoder,
    record_json_decoder,
    utc_now,
)
from gateway.redaction import redact
from services.bridge.homeassistant import device_config, discovery_topic, node_id
from services.bridge.topics import BadCommand, Topics, command_from, publication

if TYPE_CHECKING:
    import paho.mqtt.client as paho

logger = logging.getLogger(__name__)
KEEPALIVE_S = 30
HEALTH_EVERY_S = 10.0  # the health file's counters, at most this stale (tmpfs: no wear)


class Bridge:
    """One broker connection for one gateway's printers."""

    def __init__(self, config: Config, ctx: zmq.asyncio.Context, problems: Problems) -> None:
        assert config.mqtt is not None
        self.config = config
        self.mqtt = config.mqtt
        self.layout = Layout.of(config)
        self.problems = problems
        self.topics = Topics(self.mqtt.topic_prefix, config.gateway.id)
        self.printers = {printer.id: printer for printer in config.printers}
        self.latest: dict[str, Status] = {}
        self.info: dict[str, PrinterInfo] = {}
        self.connected = False
        self.connected_since: str | None = None
        self.published = 0
        self.commands = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._tap = ctx.socket(zmq.SUB)
        self._tap.setsockopt(zmq.LINGER, 0)
        self._tap.setsockopt(zmq.SUBSCRIBE, b"")
        self._tap.connect(self.layout.tap_endpoint)
        self._injector = CommandInjector(self.layout.control_endpoint)
        self._client = self._make_client()
        self._health_at = 0.0

    # ------------------------------------------------------------------ paho (its thread)

    def _make_client(self) -> paho.Client:
        import paho.mqtt.client as paho  # only in a gateway with [mqtt]
        from paho.mqtt.enums import CallbackAPIVersion

        url = urllib.parse.urlsplit(self.mqtt.url)
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"printer-gateway-{self.config.gateway.id}",
            protocol=paho.MQTTv5,
        )
        if self.mqtt.username:
            password = mqtt_password(self.config)
            client.username_pw_set(self.mqtt.username, password.reveal() if password else None)
        if url.scheme == "mqtts":
            client.tls_set()  # the system's CAs: a broker's certificate is checked
        client.will_set(self.topics.availability, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._hand("connected", reason)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._hand("disconnected", reason)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._hand("message", (message.topic, bytes(message.payload), bool(message.retain)))

    def _hand(self, kind: str, value: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: the stop handles it
            loop.call_soon_threadsafe(self._put, kind, value)

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._inbox.put_nowait((kind, value))
        except asyncio.QueueFull:
            logger.warning("MQTT messages arrive faster than they are handled: one dropped")

    # ------------------------------------------------------------------ the event loop

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (in the background), publish and take commands until stop."""
        self._loop = asyncio.get_running_loop()
        url = urllib.parse.urlsplit(self.mqtt.url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self._client.connect_async(url.hostname or "", port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        self._write_health()
        self.problems.report("broker", f"connecting to {redact(self.mqtt.url)}")
        tasks = [
            asyncio.create_task(self._forward_tap(stop)),
            asyncio.create_task(self._handle_inbox(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.connected:  # said, not left to the will: a clean stop is no crash
                info = self._client.publish(self.topics.availability, b"offline", 1, True)
                with contextlib.suppress(RuntimeError, ValueError):
                    await asyncio.to_thread(info.wait_for_publish, 2.0)
            self._client.disconnect()
            await asyncio.to_thread(self._client.loop_stop)
            self._injector.close()
            self._tap.close()
            self.connected = False
            self._write_health()

    async def _forward_tap(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            data = await self._tap.recv()
            try:
                record = record_json_decoder.decode(data)
            except DECODE_ERRORS as err:
                logger.warning("an unreadable record on the tap: %s", err)
                continue
            if isinstance(record, Status) and record.printer_id is not None:
                self.latest[record.printer_id] = record
                if record.printer != self.info.get(record.printer_id) and any(
                    msgspec.structs.astuple(record.printer)
                ):
                    self.info[record.printer_id] = record.printer
                    self._send_discovery(record.printer_id)  # model, firmware, serial known now
            self._publish_record(record)
            if time.monotonic() - self._health_at > HEALTH_EVERY_S:  # counters for `status`
                self._write_health()

    def _publish_record(self, record: Any) -> None:
        out = publication(self.topics, record)
        if out is None or not self.connected:
            return  # while down, nothing queues up: the state is re-sent on connect
        self._client.publish(out.topic, out.payload, out.qos, out.retain)
        self.published += 1

    async def _handle_inbox(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            kind, value = await self._inbox.get()
            if kind == "connected":
                self._connected(value)
            elif kind == "disconnected":
                self._disconnected(value)
            else:
                topic, payload, retained = value
                self._message(topic, payload, retained)

    def _connected(self, reason: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.problems.report("broker", f"the broker refused the connection: {reason}")
            logger.warning("MQTT broker %s refused: %s", redact(self.mqtt.url), reason)
            return
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self.connected, self.connected_since = True, utc_now().isoformat()
        self.problems.clear("broker")
        logger.info("MQTT connected to %s", redact(self.mqtt.url))
        client = self._client
        client.publish(self.topics.availability, b"online", 1, True)
        if self.mqtt.commands:  # the retain flag as published: a retained command shows it
            options = SubscribeOptions(qos=1, retainAsPublished=True)
            client.subscribe(self.topics.commands, options=options)
        if self.mqtt.discovery_prefix:
            client.subscribe(f"{self.mqtt.discovery_prefix}/status", qos=1)
            client.subscribe(f"{self.mqtt.discovery_prefix}/device/+/config", qos=1)
            for printer_id in self.printers:
                self._send_discovery(printer_id)
        for status in self.latest.values():
            self._publish_record(status)
        self._write_health()

    def _disconnected(self, reason: Any) -> None:
        if self.connected:
            logger.warning("MQTT connection lost (%s): reconnecting", reason)
        self.connected = False
        self.problems.report("broker", f"not connected to {redact(self.mqtt.url)}: {reason}")
        self._write_health()

    def _send_discovery(self, printer_id: str) -> None:
        if not self.mqtt.discovery_prefix or not self.connected:
            return
        printer = self.printers.get(printer_id)
        if printer is None:
            return
        payload = device_config(
            self.topics, printer, self.info.get(printer_id, PrinterInfo()), self.config.limits
        )
        topic = discovery_topic(self.mqtt.discovery_prefix, self.config.gateway.id, printer_id)
        self._client.publish(topic, payload, 1, True)

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        prefix = self.mqtt.discovery_prefix
        if prefix and topic == f"{prefix}/status":
            if payload.strip() == b"online":
                logger.info("Home Assistant is back: discovery sent again")
                for known in self.printers:
                    self._send_discovery(known)
            return
        if prefix and topic.startswith(f"{prefix}/device/"):
            self._maybe_stale_device(topic, payload, retained)
            return
        commanded = self.topics.printer_of_command(topic)
        if commanded is not None:
            self._command(topic, commanded, payload, retained)

    def _maybe_stale_device(self, topic: str, payload: bytes, retained: bool) -> None:
        """A retained discovery message of this gateway for a printer it no longer has:
        removed (an empty retained payload)."""
        if not retained or not payload:
            return
        node = topic.split("/")[-2]
        ours = {node_id(self.config.gateway.id, p) for p in self.printers}
        if node not in ours and _written_by(payload, self.topics.availability):
            logger.info("printer %s left the config: its Home Assistant device is removed", node)
            self._client.publish(topic, b"", 1, True)

    def _command(self, topic: str, printer_id: str, payload: bytes, retained: bool) -> None:
        if retained:
            if payload:  # never run, and cleared so no restart finds it again
                logger.warning(
                    "a retained command on %s was ignored and cleared (commands must not be "
                    "retained: every restart would run them again)",
                    topic,
                )
                self._client.publish(topic, b"", 1, True)
            return
        if not payload:
            return
        try:
            command = command_from(printer_id, payload)
        except BadCommand as err:
            logger.warning("MQTT command on %s refused: %s", topic, err.reason)
            self._reply(printer_id, err.command_id, err.reason)
            return
        if not self._injector.inject(command):
            self._reply(printer_id, command.id, "control is not running: try again")
            return
        self.commands += 1
        logger.info("MQTT command %s: %s for %s", command.id, command.type, printer_id)

    def _reply(self, printer_id: str, command_id: str, reason: str) -> None:
        """A result on MQTT for a message control never saw (it has no ledger entry)."""
        result = CommandResult(
            id=f"{self.config.gateway.id}:mqtt-result:{command_id}",
            printer_id=printer_id,
            ts=utc_now(),
            command_id=command_id,
            outcome="rejected",
            detail=reason[:1000],
        )
        if self.connected:
            topic = self.topics.printer(printer_id, "command_result")
            self._client.publish(topic, json_encoder.encode(result), 1, False)

    def _write_health(self) -> None:
        self._health_at = time.monotonic()
        write_bridge(
            self.layout,
            BridgeHealth(
                broker=redact(self.mqtt.url),
                connected=self.connected,
                since=self.connected_since if self.connected else None,
                published=self.published,
                commands=self.commands,
            ),
        )


def _written_by(payload: bytes, availability: str) -> bool:
    """A discovery message this gateway wrote: printer-gateway's, with this gateway's
    availability topic (never another gateway's device, never someone else's)."""
    try:
        config = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return False
    if not isinstance(config, dict):
        return False
    origin, avty = config.get("o"), config.get("avty")
    return (
        isinstance(origin, dict)
        and origin.get("name") == "printer-gateway"
        and isinstance(avty, list)
        and any(isinstance(a, dict) and a.get("t") == availability for a in avty)
    )


def service(config: Config) -> runner.Service:
    """The bridge, to be run by ``runner.run``; without ``[mqtt]`` it only waits for the
    stop (the bundled conf runs it beside the uplink and control: configured by the file)."""

    async def body(ctx: zmq.asyncio.Context, stop: asyncio.Event, problems: Problems) -> None:
        if config.mqtt is None:
            await stop.wait()
            return
        bridge = Bridge(config, ctx, problems)
        logger.info("MQTT bridge started: broker %s", redact(config.mqtt.url))
        await bridge.run(stop)

    return runner.Service("bridge", body)
