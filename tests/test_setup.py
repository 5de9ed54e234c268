"""`printer-gateway setup`'s parts without a network: choosing printers, the config it writes
(always one the loader accepts, whatever a printer calls itself), its prompts, and the ways it
stops before writing anything. The whole flow against the simulator and the reference API:
tests/e2e/test_install_pi.py."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest

from console import setup
from console.cli import main
from console.discover_report import Found
from gateway.config import parse_config
from gateway.discovery import DiscoveryReply


def found(name: str, address: str = "192.168.1.50", port: int = 8899) -> Found:
    reply = DiscoveryReply(
        format="newer",
        name=name,
        serial="SN1",
        product_id=8,
        vendor_id=0x2B71,
        status_code=0,
        command_port=port,
    )
    return Found(address, reply)


def test_numbers_pick_from_the_list_and_an_address_stands_for_itself() -> None:
    listed = [found("REX A", "192.168.1.50"), found("REX A", "192.168.1.51")]
    chosen = setup.pick("2, 1", listed)
    assert [(p.id, p.host) for p in chosen] == [
        ("rex-a", "192.168.1.51"),
        ("rex-a-2", "192.168.1.50"),
    ]
    assert [(p.host, p.port) for p in setup.pick("10.0.0.7", [])] == [("10.0.0.7", 8899)]
    assert [(p.host, p.port) for p in setup.pick("10.0.0.7:9000", [])] == [("10.0.0.7", 9000)]
    for bad in ("3", "0", "", "a b", "10.0.0.7:http", "10.0.0.7:70000"):
        with pytest.raises(ValueError, match=r"in the list|not an address|type a number"):
            setup.pick(bad, listed)


def test_the_config_holds_hostile_names_as_plain_values(tmp_path: Path) -> None:
    name = 'x"\n[api]\nurl = "http://evil'
    plan = setup.Plan(
        printers=setup.pick("1", [found(name)]),
        api_url="https://printers.example.org/api",
        token_file=tmp_path / "token",
        data_dir=str(tmp_path / "data"),
        runtime_dir=None,
    )
    text = setup.config_text(plan, datetime.date(2026, 11, 30))
    config = parse_config(text.encode(), tmp_path)
    assert config.api.url == "https://printers.example.org/api"
    assert config.api.token_file == str(tmp_path / "token")
    assert (
        config.printers[0].name == 'x"?[api]?url = "http://evil'
    )  # one value, controls made visible
    assert config.printers[0].host == "192.168.1.50"
    assert config.gateway.data_dir == str(tmp_path / "data")


def test_a_secret_from_a_script_is_never_echoed() -> None:
    out = io.StringIO()
    prompter = setup.Prompter(io.StringIO("hunter2\n"), out)
    assert prompter.secret("The API's token") == "hunter2"
    assert "hunter2" not in out.getvalue()
    assert "(not shown)" in out.getvalue()


def test_closed_input_stops_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    config = tmp_path / "gateway.toml"
    code = main(
        ["--config", str(config), "setup", "--discover-to", "127.0.0.1:9", "--timeout", "0.2"]
    )
    assert code == 2
    assert "no answer (input closed)" in capsys.readouterr().err
    assert not config.exists()
    assert not (tmp_path / "token").exists()


def test_web_app_mode_needs_its_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--config",
            str(tmp_path / "gateway.toml"),
            "setup",
            "--web-app",
            "http://127.0.0.1:8080",
            "--token-file",
            str(tmp_path / "missing"),
        ]
    )
    assert code == 2
    assert "needs its token in" in capsys.readouterr().err


def test_an_existing_config_is_kept_unless_the_owner_says_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("# mine\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["--config", str(config), "setup"]) == 0
    assert config.read_text() == "# mine\n"
    assert "Kept" in capsys.readouterr().out


def test_an_address_this_machine_cannot_find_is_asked_again_at_once(tmp_path: Path) -> None:
    out = io.StringIO()
    prompter = setup.Prompter(io.StringIO("a..b\n127.0.0.1:9000\n"), out)
    # nothing answers discovery on a closed loopback port: the owner types the address
    chosen = setup.choose_printers(prompter, "127.0.0.1:9", 0.2)
    assert [(p.id, p.host, p.port) for p in chosen] == [("printer1", "127.0.0.1", 9000)]
    assert "'a..b' is not an address this machine can find" in out.getvalue()
    assert "Asking 127.0.0.1:9" in out.getvalue()


def test_a_second_setup_offers_the_earlier_address_and_keeps_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("earlier-token\n")
    out = io.StringIO()
    prompter = setup.Prompter(io.StringIO("\n\n"), out)
    assert setup.ask_url(prompter, "https://printers.example.org/api") == (
        "https://printers.example.org/api"
    )
    assert setup.ask_token(prompter, token_file) is None  # Enter: the file stays as it is
    assert f"Enter keeps the one in {token_file}" in out.getvalue()


def test_an_http_api_elsewhere_is_taken_with_a_warning() -> None:
    out = io.StringIO()
    assert setup.ask_url(setup.Prompter(io.StringIO("http://192.168.1.9:8080\n"), out), None)
    assert "clear text" in out.getvalue()
    quiet = io.StringIO()
    assert setup.ask_url(setup.Prompter(io.StringIO("http://127.0.0.1:8080\n"), quiet), None)
    assert "clear text" not in quiet.getvalue()


def test_a_token_no_request_could_carry_is_asked_again() -> None:
    out = io.StringIO()
    prompter = setup.Prompter(io.StringIO("tökén\ngood-token\n"), out)
    assert setup.ask_token(prompter, None) == "good-token"
    assert "printable ASCII" in out.getvalue()


def test_setup_that_cannot_write_says_so_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The config's folder is not writable (a plain user running setup): a sentence, exit 2."""

    def refuse(path: Path, *_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(setup, "write_atomically", refuse)
    monkeypatch.setattr("sys.stdin", io.StringIO("127.0.0.1:9000\nhttps://api.example.org\nt0k\n"))
    config = tmp_path / "gateway.toml"
    argv = ["--config", str(config), "setup", "--discover-to", "127.0.0.1:9", "--timeout", "0.2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'token'}: Permission denied" in err
    assert "Traceback" not in err
    assert not config.exists()
