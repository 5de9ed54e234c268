"""Payload parsers against every fixture family, and the inputs they must refuse."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from gateway.errors import UnexpectedPayloadError
from gateway.messages import Layer, Temperature
from services.poller.protocol import (
    Activity,
    ControlGrant,
    FileSelected,
    MachineInfo,
    Position,
    PrintProgress,
    Temperatures,
    frame_reply,
    parse_ack,
    parse_m23,
    parse_m27,
    parse_m105,
    parse_m114,
    parse_m115,
    parse_m119,
    parse_m601,
    parse_m602,
)
from tests.fixtures.replies import by_name


def _lines(name: str) -> tuple[str, ...]:
    fixture = by_name(name)
    return frame_reply(fixture.code, fixture.wire).lines


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("m105_rex_idle", Temperatures((Temperature(27, 0),), Temperature(20, 0))),
        ("m105_rex_fw137_heating", Temperatures((Temperature(52, 240),), Temperature(46, 100))),
        ("m105_a3_idle", Temperatures((Temperature(22, 0),), Temperature(11, 0))),
        ("m105_a4_printing", Temperatures((Temperature(198, 210),), Temperature(48, 64))),
        (
            "m105_a4_newfw_t1",
            Temperatures((Temperature(104.5, 225.0), Temperature(0, 0)), Temperature(51.3, 50)),
        ),
        (
            "m105_trex_dual",
            Temperatures((Temperature(23, 0), Temperature(23, 0)), Temperature(18, 0)),
        ),
        (
            "m105_usb_dual",
            Temperatures((Temperature(22, 0), Temperature(21, 0)), Temperature(12, 0)),
        ),
    ],
)
def test_m105(name: str, expected: Temperatures) -> None:
    parsed = parse_m105(_lines(name))
    assert parsed == expected
    assert all(isinstance(t.current, float) and isinstance(t.target, float) for t in parsed.nozzles)


@pytest.mark.parametrize(
    "line",
    ["T0: 27 / 0 B: 20 / 0", "T0:27/0 B:20/0", "T0:27.0 /0.0  B:20.0/0.0", "T:27 /0 B:20 /0"],
)
def test_m105_spacing_variants(line: str) -> None:
    assert parse_m105([line]) == Temperatures((Temperature(27, 0),), Temperature(20, 0))


def test_m105_without_bed_reports_no_bed() -> None:
    assert parse_m105(["T0:210 /210"]).bed is None


@pytest.mark.parametrize(
    ("name", "expected", "percent"),
    [
        ("m27_rex_idle", PrintProgress(0, 100), 0.0),
        ("m27_a3_printing", PrintProgress(2, 100), 2.0),
        ("m27_trex_idle_0_0", PrintProgress(0, 0), 0.0),
        ("m27_trex_bytes_over_total", PrintProgress(12738825, 12738824), 100.0),
        ("m27_usb_per_mille", PrintProgress(0, 1000), 0.0),
        ("m27_finder_per_mille", PrintProgress(543, 1000), 54.3),
        ("m27_negative_after_error", PrintProgress(-1, 100), 0.0),
        ("m27_with_layer", PrintProgress(42, 100, Layer(44, 419)), 42.0),
    ],
)
def test_m27(name: str, expected: PrintProgress, percent: float) -> None:
    parsed = parse_m27(_lines(name))
    assert parsed == expected
    assert parsed.percent == pytest.approx(percent)


def test_m27_not_sd_printing_is_zero_of_zero() -> None:
    assert parse_m27(["Not SD printing."]) == PrintProgress(0, 0)


def test_m27_real_byte_counts_give_a_ratio() -> None:
    assert parse_m27(["SD printing byte 3045937/17491619"]).percent == pytest.approx(
        17.4135, abs=1e-3
    )


@pytest.mark.parametrize(
    ("name", "status", "activity", "file", "led"),
    [
        ("m119_rex_ready", "READY", Activity.READY, None, None),
        (
            "m119_rex_fw137_printing",
            "BUILDING_FROM_SD",
            Activity.PRINTING,
            "NvidiaV100Fan_eABS+HS@245+10%.gx",
            False,
        ),
        ("m119_a4_ready_empty_file", "READY", Activity.READY, None, False),
        (
            "m119_a4_printing",
            "BUILDING_FROM_SD",
            Activity.PRINTING,
            "RussianDollMazeModels.gx",
            True,
        ),
        ("m119_trex_no_status_line", "READY", Activity.READY, None, None),
        ("m119_finder_ready", "READY", Activity.READY, None, None),
        ("m119_usb_building", "BUILDING_FROM_SD", Activity.PRINTING, None, None),
        ("m119_usb_fw284_tail", "BUILDING_FROM_SD", Activity.PRINTING, None, None),
        ("m119_paused_machine_status", "PAUSED", Activity.PAUSED, "benchy.gx", True),
        ("m119_paused_move_mode", "BUILDING_FROM_SD", Activity.PAUSED, None, None),
        ("m119_building", "BUILDING", Activity.PRINTING, None, None),
        ("m119_completed", "BUILDING_COMPLETED", Activity.COMPLETED, None, None),
        ("m119_busy", "BUSY", Activity.BUSY, None, None),
    ],
)
def test_m119(
    name: str, status: str, activity: Activity, file: str | None, led: bool | None
) -> None:
    parsed = parse_m119(_lines(name))
    assert (parsed.machine_status, parsed.activity, parsed.current_file, parsed.led) == (
        status,
        activity,
        file,
        led,
    )


def test_m119_keys_and_flags_are_numbers() -> None:
    parsed = parse_m119(_lines("m119_trex_no_status_line"))
    assert parsed.endstops == {"X-max": 0, "Y-max": 0, "Z-min": 0}
    assert parsed.flags == {}
    assert parse_m119(_lines("m119_rex_ready")).flags == {"S": 1, "L": 0, "J": 0, "F": 0}


def test_m119_unknown_status_is_unknown_not_an_error() -> None:
    assert parse_m119(["MachineStatus: SOMETHING_NEW"]).activity is Activity.UNKNOWN


def test_m119_file_name_with_colons_is_kept_whole() -> None:
    assert (
        parse_m119(["MachineStatus: BUILDING_FROM_SD", "CurrentFile: a:b.gx"]).current_file
        == "a:b.gx"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "m115_rex_fw221",
            MachineInfo(
                machine_type="FlashForge Adventurer III",
                name="******",
                firmware="v2.2.1",
                serial="SN**********",
                tool_count=1,
                build_volume=(150.0, 150.0, 150.0),
                mac="**:**:**:**:**:**",
            ),
        ),
        (
            "m115_rex_flashforged_fw137",
            MachineInfo(
                machine_type="FlashForge Adventurer III",
                name="Bresser REX_flashforged",
                firmware="v1.3.7",
                serial="SNFFAD265210",
                tool_count=1,
                build_volume=(150.0, 150.0, 150.0),
                mac="88:A9:A7:91:B1:0E",
            ),
        ),
        (
            "m115_a4",
            MachineInfo(
                machine_type="Flashforge Adventurer 4",
                name="Adventurer4",
                firmware="v2.0.9",
                serial="SNADVA9501174",
                tool_count=1,
                build_volume=(220.0, 200.0, 250.0),
                mac="88:A9:A7:93:86:F8",
            ),
        ),
        (
            "m115_trex_no_mac",
            MachineInfo(
                machine_type="T-REX",
                name="My 3D Printer",
                firmware="V1.0.0 20200821",
                serial="400040-414e5019-20303347",
                tool_count=2,
                build_volume=(227.0, 148.0, 150.0),
                mac=None,
            ),
        ),
        (
            "m115_serial_number_a3",
            MachineInfo(
                machine_type="FlashForge Adventurer III",
                name="MyPrinter",
                firmware="v1.3.7",
                serial="SNADVA3M12345",
                tool_count=1,
                build_volume=(150.0, 150.0, 150.0),
                mac="00:11:22:33:44:55",
            ),
        ),
        (
            "m115_a3_v117",
            MachineInfo(
                machine_type="FlashForge Adventurer III",
                name="My 3D Printer",
                firmware="v1.1.7",
                serial="SNFFAD229083",
                tool_count=1,
                build_volume=(150.0, 150.0, 150.0),
                mac="88:A9:A7:90:77:A5",
            ),
        ),
    ],
)
def test_m115(name: str, expected: MachineInfo) -> None:
    assert parse_m115(_lines(name)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("m114_rex", Position(79.9981, 50.0002, 77.9001, 0, 0)),
        ("m114_rex_fw137", Position(79.9875, -1000, 77.211, 0, 0)),
        ("m114_a4", Position(19.3861, 54.3, 194.44, 0, 0)),
        ("m114_trex_printing", Position(147.993, 74.9949, 150, 0, 0)),
    ],
)
def test_m114(name: str, expected: Position) -> None:
    assert parse_m114(_lines(name)) == expected


@pytest.mark.parametrize(
    ("name", "granted"),
    [("m601_success_rex", True), ("m601_success_v21_a4", True), ("m601_failed", False)],
)
def test_m601(name: str, granted: bool) -> None:
    grant = parse_m601(_lines(name))
    assert grant == ControlGrant(granted, _lines(name)[0])


def test_m601_have_been_connected_is_our_own_lingering_session() -> None:
    grant = parse_m601(_lines("m601_have_been_connected_a3"))
    assert grant == ControlGrant(True, "Error: have been connected", lingering=True)


def test_m115_prefers_sn_when_both_serial_keys_are_present() -> None:
    lines = ["Machine Type: X", "Serial Number: LONG", "SN: SHORT"]
    assert parse_m115(lines).serial == "SHORT"


@pytest.mark.parametrize("name", ["m602_release_rex", "m602_release_5m"])
def test_m602(name: str) -> None:
    parse_m602(_lines(name))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("m23_a3", FileSelected("20mm_Box.gx", 154674)),
        ("m23_a4_space_in_name", FileSelected("My Box.gx", 1613086)),
    ],
)
def test_m23(name: str, expected: FileSelected) -> None:
    assert parse_m23(_lines(name)) == expected


@pytest.mark.parametrize(
    "name",
    [
        "m25_pause_ack",
        "m24_resume_ack",
        "m26_cancel_ack_a3",
        "m104_ack_rex",
        "m140_ack_rex",
        "m146_ack_rex",
        "m17_ack_rex",
        "m18_ack_rex",
        "m112_ack_rex",
        "g91_ack_rex",
        "m29_done_saving",
    ],
)
def test_plain_acks(name: str) -> None:
    assert parse_ack(_lines(name)) == _lines(name)


Parser = Callable[[Sequence[str]], object]


@pytest.mark.parametrize(
    ("parser", "lines"),
    [
        (parse_m105, []),
        (parse_m105, ["B:20/0"]),
        (parse_m105, ["garbage"]),
        (parse_m27, []),
        (parse_m27, ["SD printing byte x/100"]),
        (parse_m119, ["Endstop: X-max:1", "MoveMode: READY"]),
        (parse_m119, ["MachineStatus: READY", "LED: on"]),
        (parse_m114, ["X:1 Y:2"]),
        (parse_m115, ["Tool Count: 1"]),
        (parse_m115, ["Machine Type: X", "Tool Count: two"]),
        (parse_m601, []),
        (parse_m601, ["Error: something else"]),
        (parse_m602, ["Something else"]),
        (parse_m23, ["File selected"]),
        (parse_ack, ["Error: invalid parameter"]),
        (parse_ack, ["Command failed"]),
    ],
)
def test_parsers_refuse_with_a_typed_error(parser: Parser, lines: list[str]) -> None:
    with pytest.raises(UnexpectedPayloadError) as caught:
        parser(lines)
    assert caught.value.raw == "\n".join(lines).encode()
