"""A real Mosquitto broker on 127.0.0.1:<free port> for the MQTT tests, and a small
recording client (paho-mqtt) to watch and publish.

CI installs Debian's ``mosquitto`` (``.ci/run``) and sets PRINTER_GATEWAY_REQUIRE_MOSQUITTO,
so there a missing broker fails; elsewhere the tests that need one are skipped, saying why.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.demo import free_port
from console.demo_broker import mosquitto
from tests.support.programs import need
from tests.support.waiting import wait_for

MOSQUITTO = mosquitto()


def need_mosquitto() -> str:
    """The broker's executable, or skip (fail in CI) with the reason."""
    return need(MOSQUITTO, "mosquitto", "PRINTER_GATEWAY_REQUIRE_MOSQUITTO")


class Broker:
    """One broker process, loopback only, anonymous, no persistence; kill and start again
    on the same port."""

    def __init__(self, folder: Path) -> None:
        self.executable = need_mosquitto()
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.log = (folder / "mosquitto.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "-c", str(self.conf)], stdout=self.log, stderr=self.log
        )
        wait_for(self._listening, 10, every_s=0.05, what="mosquitto to listen")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.kill()
        self.log.close()

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


@dataclass
class Seen:
    """A message the watcher received."""

    topic: str
    payload: bytes
    retained: bool


@dataclass
class Watcher:
    """A paho client that records every message on its subscriptions."""

    broker: Broker
    topics: list[str]
    messages: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None

    def __enter__(self) -> Watcher:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        connected = threading.Event()

        def on_connect(*_: Any) -> None:
            for topic in self.topics:
                client.subscribe(topic, qos=1)
            connected.set()

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            with self.lock:
                self.messages.append(Seen(message.topic, bytes(message.payload), message.retain))

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        connected.wait(10)
        self.client = client
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Seen]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
