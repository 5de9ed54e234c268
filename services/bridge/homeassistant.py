"""Home Assistant MQTT discovery (architecture §4.6), without I/O: one device-based message
per printer, ``D/device/<G>_<R>/config``, retained; an empty retained payload removes it.

Every entity reads the printer's retained ``state`` topic (a status record), so Home
Assistant shows the gateway's view at once after a restart and never opens the printer.
The status entity is an enum that says ``offline`` or ``held_by_other_client`` instead of
going unavailable; availability is the gateway's (its will). Commands publish to the
printer's ``command`` topic, non-retained, with the bounds of ``[limits]``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway import __version__
from gateway.config import LimitsSection, PrinterSection
from gateway.messages import EventName, PrinterInfo, PrinterState
from services.bridge.topics import Topics

STATES: tuple[PrinterState, ...] = (
    "offline",
    "held_by_other_client",
    "idle",
    "printing",
    "paused",
    "completed",
    "error",
)
PRINT_EVENTS: tuple[EventName, ...] = (
    "print_started",
    "print_finished",
    "print_cancelled",
    "print_paused",
    "print_resumed",
    "printer_lost_while_printing",
)


def node_id(gateway_id: str, printer_id: str) -> str:
    """A discovery node id: Home Assistant allows letters, digits, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{gateway_id}_{printer_id}")


def discovery_topic(discovery_prefix: str, gateway_id: str, printer_id: str) -> str:
    return f"{discovery_prefix}/device/{node_id(gateway_id, printer_id)}/config"


def _sensor(name: str, template: str, **more: Any) -> dict[str, Any]:
    return {"p": "sensor", "name": name, "val_tpl": template, **more}


def _command(kind: str, params: str = "{}") -> str:
    return '{"type": "' + kind + '", "params": ' + params + "}"


def device_config(
    topics: Topics,
    printer: PrinterSection,
    info: PrinterInfo,
    limits: LimitsSection,
) -> bytes:
    """The discovery message of one printer (JSON)."""
    node = node_id(topics.gateway_id, printer.id)
    state = topics.printer(printer.id, "state")
    command = topics.printer(printer.id, "command")
    job = "value_json.job"
    components: dict[str, dict[str, Any]] = {
        "status": _sensor(
            "Status",
            "{{ value_json.state }}",
            dev_cla="enum",
            options=list(STATES),
            ic="mdi:printer-3d",
        ),
        "progress": _sensor(
            "Progress",
            "{{ value_json.progress_percent if value_json.progress_percent is not none "
            "else 'unknown' }}",
            unit_of_meas="%",
            stat_cla="measurement",
            ic="mdi:progress-clock",
        ),
        "nozzle_temperature": _sensor(
            "Nozzle temperature",
            "{{ value_json.nozzle.current if value_json.nozzle else 'unknown' }}",
            dev_cla="temperature",
            unit_of_meas="°C",
            stat_cla="measurement",
        ),
        "nozzle_target": _sensor(
            "Nozzle target",
            "{{ value_json.nozzle.target if value_json.nozzle else 'unknown' }}",
            dev_cla="temperature",
            unit_of_meas="°C",
            stat_cla="measurement",
        ),
        "bed_temperature": _sensor(
            "Bed temperature",
            "{{ value_json.bed.current if value_json.bed else 'unknown' }}",
            dev_cla="temperature",
            unit_of_meas="°C",
            stat_cla="measurement",
        ),
        "bed_target": _sensor(
            "Bed target",
            "{{ value_json.bed.target if value_json.bed else 'unknown' }}",
            dev_cla="temperature",
            unit_of_meas="°C",
            stat_cla="measurement",
        ),
        "file": _sensor("File", "{{ value_json.file if value_json.file else '' }}", ic="mdi:file"),
        "time_remaining": _sensor(
            "Time remaining",
            f"{{{{ {job}.remaining_s if {job} and {job}.remaining_s is not none "
            "else 'unknown' }}",
            dev_cla="duration",
            unit_of_meas="s",
        ),
        "eta": _sensor(
            "Print done at",
            f"{{{{ {job}.eta if {job} and {job}.eta else 'unknown' }}}}",
            dev_cla="timestamp",
        ),
        "printing": {
            "p": "binary_sensor",
            "name": "Printing",
            "dev_cla": "running",
            "val_tpl": "{{ 'ON' if value_json.state in ('printing', 'paused') else 'OFF' }}",
        },
        "reachable": {
            "p": "binary_sensor",
            "name": "Reachable",
            "dev_cla": "connectivity",
            "ent_cat": "diagnostic",
            "val_tpl": "{{ 'OFF' if value_json.state == 'offline' else 'ON' }}",
        },
        "pause": {"p": "button", "name": "Pause", "cmd_t": command, "pl_prs": _command("pause")},
        "resume": {"p": "button", "name": "Resume", "cmd_t": command, "pl_prs": _command("resume")},
        "cancel": {
            "p": "button",
            "name": "Cancel print",
            "cmd_t": command,
            "pl_prs": _command("cancel"),
        },
        "nozzle_set": {
            "p": "number",
            "name": "Nozzle target set",
            "cmd_t": command,
            "cmd_tpl": _command("set_nozzle_temperature", '{"celsius": {{ value | int }}}'),
            "val_tpl": "{{ value_json.nozzle.target if value_json.nozzle else 0 }}",
            "min": 0,
            "max": limits.max_nozzle_c,
            "step": 1,
            "unit_of_meas": "°C",
            "mode": "box",
        },
        "bed_set": {
            "p": "number",
            "name": "Bed target set",
            "cmd_t": command,
            "cmd_tpl": _command("set_bed_temperature", '{"celsius": {{ value | int }}}'),
            "val_tpl": "{{ value_json.bed.target if value_json.bed else 0 }}",
            "min": 0,
            "max": limits.max_bed_c,
            "step": 1,
            "unit_of_meas": "°C",
            "mode": "box",
        },
        "light": {
            "p": "switch",
            "name": "Light",
            "cmd_t": command,
            "pl_on": _command("light", '{"on": true}'),
            "pl_off": _command("light", '{"on": false}'),
            "optimistic": True,  # the printer does not report its light
        },
        "print_event": {
            "p": "event",
            "name": "Print event",
            "stat_t": topics.printer(printer.id, "event"),
            "evt_typ": [*PRINT_EVENTS, "job_recorded"],
            "val_tpl": (
                "{{ {'event_type': value_json.event if value_json.kind == 'event' "
                "else 'job_recorded'} | tojson }}"
            ),
        },
    }
    for key, component in components.items():
        component["uniq_id"] = f"pgw_{node}_{key}"
        component["obj_id"] = f"{node}_{key}"
        if component["p"] not in ("button", "event") and "stat_t" not in component:
            if component["p"] in ("sensor", "binary_sensor", "number"):
                component["stat_t"] = state
    device: dict[str, Any] = {
        "ids": [f"pgw_{node}"],
        "name": printer.name or printer.id,
        "mf": "FlashForge",
        "mdl": info.model or "Adventurer 3 family",
    }
    if info.firmware:
        device["sw"] = info.firmware
    if info.serial:
        device["sn"] = info.serial
    config = {
        "dev": device,
        "o": {"name": "printer-gateway", "sw": __version__},
        "avty": [{"t": topics.availability}],
        "qos": 1,
        "cmps": components,
    }
    return msgspec.json.encode(config)
