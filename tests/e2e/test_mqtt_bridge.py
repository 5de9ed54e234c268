"""The MQTT bridge against a real Mosquitto: Home Assistant discovery field by field and again
after HA's birth message, state/event/result topics during a simulated print, commands over
MQTT through control (once, with a result, also to the API), a retained command never run,
an out-of-limit one never on the wire, a broker killed mid-print, and a printer that left
the config removed from Home Assistant."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from simulator import PrintJob, SimulatorThread
from tests.support.cli import Cli
from tests.support.configs import write_config
from tests.support.http import TOKEN, ApiThread
from tests.support.mosquitto import Broker, Watcher
from tests.support.processes import Services
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
P = "pg"  # topic prefix
D = "homeassistant"
NODE = "gw_rex1"


class Gateway(Services):
    """The printer side and the API side (`run uplink control bridge`) as real processes."""

    def __init__(self, tmp_path: Path, api: ApiThread, sim: SimulatorThread, broker: Broker):
        config = write_config(
            tmp_path,
            {"rex1": {"port": sim.port, "poll_interval_s": 0.3, "probe_interval_s": 1}},
            api_url=api.url,
            token=TOKEN,
            limits={"max_nozzle_c": 240, "max_bed_c": 100},
            mqtt={"url": broker.url, "topic_prefix": P},
        )
        super().__init__(config, tmp_path / "services.log")


@contextmanager
def gateway(
    tmp_path: Path, api: ApiThread, sim: SimulatorThread, broker: Broker
) -> Iterator[Gateway]:
    running = Gateway(tmp_path, api, sim, broker)
    running.start("uplink", "control", "bridge")
    running.start("poller")
    try:
        yield running
    finally:
        codes = running.stop_all()
        assert codes == [0] * len(codes), codes


def wire(sim: SimulatorThread, code: str) -> int:
    return sum(1 for e in sim.wire() if e.what == "in" and e.text.split()[0] == f"~{code}")


def last_json(watcher: Watcher, topic: str) -> dict[str, Any]:
    return dict(json.loads(watcher.on(topic)[-1].payload))


def results(watcher: Watcher) -> dict[str, dict[str, Any]]:
    return {
        json.loads(m.payload)["command_id"]: json.loads(m.payload)
        for m in watcher.on(f"{P}/gw/rex1/command_result")
    }


def test_discovery_state_events_and_commands_over_mqtt(
    sim: SimulatorThread, tmp_path: Path, broker: Broker
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="mqtt.gx", duration_s=600)))
    with (
        ApiThread(tmp_path / "api.db") as api,
        Watcher(broker, [f"{P}/#", f"{D}/#"]) as watcher,
        gateway(tmp_path, api, sim, broker) as running,
    ):
        config_topic = f"{D}/device/{NODE}/config"
        wait_for(lambda: watcher.on(f"{P}/gw/availability"), 30, what="availability")
        assert watcher.on(f"{P}/gw/availability")[-1].payload == b"online"
        wait_for(lambda: watcher.on(config_topic), 30, what="discovery")
        wait_for(
            lambda: last_json(watcher, config_topic)["dev"].get("sn") == "SNSIM0000001",
            30,
            what="discovery with the printer's serial",
        )
        discovery = last_json(watcher, config_topic)
        assert watcher.on(config_topic)[-1].retained is False  # live: retained is checked below
        assert discovery["dev"]["ids"] == [f"pgw_{NODE}"]
        assert discovery["avty"] == [{"t": f"{P}/gw/availability"}]
        assert discovery["o"]["name"] == "printer-gateway"
        components = discovery["cmps"]
        expected = {
            "status": ("sensor", "enum"),
            "progress": ("sensor", None),
            "nozzle_temperature": ("sensor", "temperature"),
            "nozzle_target": ("sensor", "temperature"),
            "bed_temperature": ("sensor", "temperature"),
            "bed_target": ("sensor", "temperature"),
            "file": ("sensor", None),
            "time_remaining": ("sensor", "duration"),
            "eta": ("sensor", "timestamp"),
            "printing": ("binary_sensor", "running"),
            "reachable": ("binary_sensor", "connectivity"),
            "pause": ("button", None),
            "resume": ("button", None),
            "cancel": ("button", None),
            "nozzle_set": ("number", None),
            "bed_set": ("number", None),
            "light": ("switch", None),
            "print_event": ("event", None),
        }
        assert set(components) == set(expected)
        for key, (platform, device_class) in expected.items():
            component = components[key]
            assert component["p"] == platform, key
            assert component.get("dev_cla") == device_class, key
            assert component["uniq_id"] == f"pgw_{NODE}_{key}"
        assert "offline" in components["status"]["options"]
        assert "held_by_other_client" in components["status"]["options"]
        assert components["status"]["stat_t"] == f"{P}/gw/rex1/state"
        assert components["nozzle_temperature"]["unit_of_meas"] == "°C"
        assert components["nozzle_temperature"]["stat_cla"] == "measurement"
        assert components["reachable"]["ent_cat"] == "diagnostic"
        assert (components["nozzle_set"]["max"], components["bed_set"]["max"]) == (240, 100)
        assert components["pause"]["cmd_t"] == f"{P}/gw/rex1/command"
        assert json.loads(components["pause"]["pl_prs"]) == {"type": "pause", "params": {}}
        assert components["print_event"]["stat_t"] == f"{P}/gw/rex1/event"

        # Retained on the broker: a new subscriber gets the discovery and the state at once.
        with Watcher(broker, [config_topic, f"{P}/gw/rex1/state"]) as late:
            wait_for(lambda: late.on(config_topic) and late.on(f"{P}/gw/rex1/state"), 10)
            assert late.on(config_topic)[0].retained
            state = json.loads(late.on(f"{P}/gw/rex1/state")[0].payload)
            assert (state["kind"], state["state"]) == ("status", "printing")

        # Home Assistant restarts: its birth message brings the discovery again.
        sent_before = len(watcher.on(config_topic))
        watcher.publish(f"{D}/status", b"online")
        wait_for(lambda: len(watcher.on(config_topic)) > sent_before, 10, what="re-discovery")

        # Events on the event topic (the print was under way when the gateway started).
        wait_for(lambda: watcher.on(f"{P}/gw/rex1/event"), 30, what="an event")
        first_event = last_json(watcher, f"{P}/gw/rex1/event")
        assert first_event["kind"] == "event"

        # A pause over MQTT: executed once, one result on MQTT and one in the API.
        watcher.publish(f"{P}/gw/rex1/command", b'{"type": "pause", "id": "m-1"}')
        wait_for(lambda: "m-1" in results(watcher), 30, what="the pause's result")
        assert results(watcher)["m-1"]["outcome"] == "done"
        assert sim.truth()["status"] == "PAUSED"
        watcher.publish(f"{P}/gw/rex1/command", b'{"type": "pause", "id": "m-1"}')  # again

        def stored() -> list[dict[str, Any]]:
            listed = api.get("/v1/records", gateway_id="gw", kind="command_result").json()
            return [r for r in listed["records"] if r["command_id"] == "m-1"]

        wait_for(stored, 20, what="the result in the API")
        time.sleep(1.0)
        assert wire(sim, "M25") == 1  # once, whatever the repeats
        assert len(stored()) == 1

        # Out of limits: refused by control, never on the printer's wire.
        watcher.publish(
            f"{P}/gw/rex1/command",
            b'{"type": "set_nozzle_temperature", "params": {"celsius": 400}, "id": "m-hot"}',
        )
        wait_for(lambda: "m-hot" in results(watcher), 30)
        assert results(watcher)["m-hot"]["outcome"] == "rejected"
        assert wire(sim, "M104") == 0

        # Garbage: a rejected result at once, nothing else.
        watcher.publish(f"{P}/gw/rex1/command", b"pause please")
        wait_for(
            lambda: any(
                r["outcome"] == "rejected" and "unreadable" in r["detail"]
                for r in results(watcher).values()
            ),
            10,
        )

        # A bed temperature and a resume over MQTT: each run, each with its result.
        watcher.publish(
            f"{P}/gw/rex1/command",
            b'{"type": "set_bed_temperature", "params": {"celsius": 55}, "id": "m-bed"}',
        )
        watcher.publish(f"{P}/gw/rex1/command", b'{"type": "resume", "id": "m-res"}')
        wait_for(lambda: {"m-bed", "m-res"} <= results(watcher).keys(), 30)
        assert results(watcher)["m-bed"]["outcome"] == "done"
        assert results(watcher)["m-res"]["outcome"] == "done"
        assert sim.truth()["status"] == "BUILDING_FROM_SD"
        assert sim.truth()["bed"][1] == 55  # type: ignore[index]

        # A retained pause is never run, and cleared from the broker: nor after a restart.
        watcher.publish(f"{P}/gw/rex1/command", b'{"type": "pause", "id": "m-r"}', retain=True)
        wait_for(
            lambda: any(
                m.payload == b"" and m.retained is False for m in watcher.on(f"{P}/gw/rex1/command")
            ),
            10,
            what="the retained command cleared",
        )
        assert running.stop("uplink") == 0
        running.start("uplink", "control", "bridge")
        time.sleep(3.0)
        assert "m-r" not in results(watcher)
        assert wire(sim, "M25") == 1  # only the live pause of the start
        assert sim.truth()["status"] == "BUILDING_FROM_SD"

        # And a cancel, once, with its result.
        watcher.publish(f"{P}/gw/rex1/command", b'{"type": "cancel", "id": "m-c"}')
        wait_for(lambda: "m-c" in results(watcher), 30)
        assert results(watcher)["m-c"]["outcome"] == "done"
        assert wire(sim, "M26") == 1


def test_a_broker_killed_mid_print_loses_nothing_for_the_api_and_catches_up(
    sim: SimulatorThread, tmp_path: Path, broker: Broker
) -> None:
    sim.call(lambda: sim.sim.model.start_print(PrintJob(file="mqtt.gx", duration_s=600)))
    with ApiThread(tmp_path / "api.db") as api, gateway(tmp_path, api, sim, broker):

        def statuses() -> int:
            return len(api.get("/v1/records", gateway_id="gw", kind="status").json()["records"])

        with Watcher(broker, [f"{P}/gw/rex1/state"]) as watcher:
            wait_for(lambda: watcher.on(f"{P}/gw/rex1/state"), 30)
        broker.kill()
        before = statuses()
        wait_for(lambda: statuses() > before + 5, 30, what="the API to keep getting statuses")
        broker.start()  # no persistence: the retained state is gone with the old broker
        with Watcher(broker, [f"{P}/gw/rex1/state", f"{P}/gw/availability"]) as watcher:
            wait_for(lambda: watcher.on(f"{P}/gw/rex1/state"), 90, what="the state again")
            state = json.loads(watcher.on(f"{P}/gw/rex1/state")[-1].payload)
            assert state["state"] == "printing"
            wait_for(lambda: watcher.on(f"{P}/gw/availability"), 10)
            assert watcher.on(f"{P}/gw/availability")[-1].payload == b"online"
        _, report = _status(tmp_path)
        assert report["mqtt"]["connected"] is True


def _status(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    result = Cli(tmp_path / "gateway.toml").run("status", "--json")
    return result.returncode, msgspec.json.decode(result.stdout)


def test_a_printer_that_left_the_config_leaves_home_assistant(
    sim: SimulatorThread, tmp_path: Path, broker: Broker
) -> None:
    with Watcher(broker, [f"{D}/device/#"]) as watcher:
        left = {  # what this gateway published for a printer since removed from its config
            "dev": {"ids": ["pgw_gw_old"], "name": "old"},
            "o": {"name": "printer-gateway"},
            "avty": [{"t": f"{P}/gw/availability"}],
            "cmps": {},
        }
        other = {**left, "avty": [{"t": f"{P}/other-gateway/availability"}]}
        watcher.publish(f"{D}/device/gw_old/config", json.dumps(left).encode(), retain=True)
        watcher.publish(f"{D}/device/gw_x/config", json.dumps(other).encode(), retain=True)
        with ApiThread(tmp_path / "api.db") as api, gateway(tmp_path, api, sim, broker):
            wait_for(
                lambda: any(m.payload == b"" for m in watcher.on(f"{D}/device/gw_old/config")),
                30,
                what="the old printer's device removed",
            )
            time.sleep(1.0)
            assert not any(m.payload == b"" for m in watcher.on(f"{D}/device/gw_x/config"))
