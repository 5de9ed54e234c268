"""The console script as a user runs it: real subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from gateway.layout import Layout
from services.poller.protocol import Activity, parse_m119
from tests.support.cli import Cli
from tests.support.configs import ConfigFactory
from tests.support.printers import Client
from tests.support.waiting import wait_for

GOOD = (
    '[api]\nurl = "http://127.0.0.1:9"\ntoken = "sekrit-token"\n[[printers]]\nhost = "127.0.0.1"\n'
)


def test_check_config_prints_effective_values_without_the_token(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "g.toml").write_text(GOOD)
    result = cli.on(tmp_path / "g.toml").run("check-config")
    assert result.returncode == 0, result.stderr
    assert '"probe_interval_s": 30.0' in result.stdout
    assert '"id": "printer1"' in result.stdout
    assert "sekrit-token" not in result.stdout + result.stderr
    assert "<redacted> (from api.token)" in result.stdout


def test_check_config_bad_file_is_one_line_naming_the_key(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "g.toml").write_text(GOOD + "port = 0\n")
    result = cli.on(tmp_path / "g.toml").run("check-config")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "printers[0].port" in result.stderr
    assert ">= 1" in result.stderr


def test_a_runtime_dir_too_long_for_a_socket_is_a_config_error(tmp_path: Path, cli: Cli) -> None:
    """supervisord would exit at start with "AF_UNIX path too long" in its own log."""
    # supervisord binds supervisor.sock.<pid> first: the longest name, with up to 7 digits
    fits = "/run/" + "r" * (107 - len("/run//supervisor.sock.1234567"))  # exactly 107 bytes
    for runtime_dir, code in ((fits, 0), (fits + "x", 2)):
        (tmp_path / "g.toml").write_text(f'{GOOD}[gateway]\nruntime_dir = "{runtime_dir}"\n')
        result = cli.on(tmp_path / "g.toml").run("check-config")
        assert result.returncode == code, result.stderr
    assert "gateway.runtime_dir" in result.stderr
    assert "supervisor.sock.<pid> there would be 108 bytes long" in result.stderr


def test_check_config_uses_the_environment_variable(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "g.toml").write_text(GOOD)
    env = {
        "PRINTER_GATEWAY_CONFIG": str(tmp_path / "g.toml"),
        "PRINTER_GATEWAY_TOKEN": "env-token-x",
    }
    result = cli.run("check-config", env={**_base_env(), **env})
    assert result.returncode == 0, result.stderr
    assert "environment variable PRINTER_GATEWAY_TOKEN" in result.stdout
    assert "env-token-x" not in result.stdout


def _base_env() -> dict[str, str]:
    import os

    return {
        key: value for key, value in os.environ.items() if not key.startswith("PRINTER_GATEWAY")
    }


@pytest.mark.parametrize(
    "verb", [["up"], ["status"], ["run", "poller"], ["queue", "stats"], ["tap"]]
)
def test_verbs_without_a_config_file_exit_2_naming_it(
    tmp_path: Path, verb: list[str], cli: Cli
) -> None:
    result = cli.on(tmp_path / "missing.toml").run(*verb)
    assert result.returncode == 2
    assert "missing.toml" in result.stderr


def test_sim_binds_port_zero_reports_it_and_follows_a_script(tmp_path: Path, cli: Cli) -> None:
    port_file = tmp_path / "port"
    command = cli.argv(
        "sim",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--print",
        "cube.gx",
        "--at",
        "0.3:pause",
        "--fault",
        "garbage_lines=true",
    )
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            assert match, line
            port = int(match[1])
            assert port_file.read_text().strip() == str(port)
            with Client(port) as client:
                assert parse_m119(client.send("M119").lines).current_file == "cube.gx"
                wait_for(
                    lambda: parse_m119(client.send("M119").lines).activity is Activity.PAUSED,
                    5,
                    every_s=0.05,
                )
                assert b"[garbage]" in client.received
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def test_sim_refuses_a_bad_step(cli: Cli) -> None:
    result = cli.run("sim", "--port", "0", "--at", "5:explode")
    assert result.returncode == 2
    assert "bad --at step" in result.stderr


def test_sim_names_the_faults_it_knows(cli: Cli) -> None:
    result = cli.run("sim", "--port", "0", "--fault", "bogus=1")
    assert result.returncode == 2
    assert "fault names:" in result.stderr
    assert "reply_delay_s" in result.stderr


def test_sim_help_lists_every_fault_and_its_values(cli: Cli) -> None:
    from simulator.server import Faults

    result = cli.run("sim", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps the help text
    for name in Faults.__struct_fields__:
        assert name in text
    assert "drop=before_reply | mid_reply | never" in text
    assert "reply_delay_s=0..120" in text
    assert "split_bytes[=true | false]" in text
    assert "power_off" in text  # the --at steps too


def test_api_without_a_token_exits_2(cli: Cli) -> None:
    result = cli.run("api", "--port", "0", env={**_base_env(), "PRINTER_GATEWAY_TOKEN": ""})
    assert result.returncode == 2
    assert "no token" in result.stderr


def test_queue_tools_on_a_real_queue(configs: ConfigFactory, cli: Cli) -> None:
    from gateway.messages import Event, utc_now
    from services.uplink.queue import DurableQueue

    path, config = configs.written({"printer1": {}}, gateway_id=None)
    on_config = cli.on(path)
    assert on_config.run("queue", "stats").returncode == 1  # no queue yet
    queue = DurableQueue(Layout.of(config).queue_db, 10**8)
    queue.accept(
        [Event(id=f"e{n}", printer_id="p", ts=utc_now(), event="printer_online") for n in range(3)]
    )
    batch = queue.claim(1, 10**6)
    assert batch is not None
    queue.dead_letter(batch, "HTTP 400")
    queue.close()
    stats = msgspec.json.decode(on_config.run("queue", "stats").stdout)
    assert stats["depth_by_kind"] == {"event": 2}
    assert stats["dead"] == 1
    assert len(on_config.run("queue", "peek", "--limit", "5").stdout.splitlines()) == 2
    assert '"reason":"HTTP 400"' in on_config.run("queue", "dead").stdout
    assert "1 dead-lettered" in on_config.run("queue", "retry").stdout
    refused = on_config.run("queue", "purge", input="n\n")
    assert refused.returncode == 1
    assert "3 records deleted" in on_config.run("queue", "purge", "--yes").stdout
    empty = on_config.run("queue", "peek")  # nothing: said, on stderr (stdout stays JSON)
    assert (empty.stdout, "nothing queued") == ("", empty.stderr.split(":")[0])


def test_check_config_hides_notification_urls_and_refuses_bad_ones(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "g.toml").write_text(
        GOOD + '[notify]\nurls = ["tgram://123456:secret-bot-token/42"]\n'
    )
    result = cli.on(tmp_path / "g.toml").run("check-config")
    assert result.returncode == 0, result.stderr
    assert "secret-bot-token" not in result.stdout
    assert "tgram://<redacted>" in result.stdout
    (tmp_path / "g.toml").write_text(GOOD + '[notify]\nurls = ["what-is-this"]\n')
    result = cli.on(tmp_path / "g.toml").run("check-config")
    assert result.returncode == 2
    assert "notify.urls[0]" in result.stderr


def test_check_config_warns_about_exposed_secrets_but_still_passes(
    tmp_path: Path, cli: Cli
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short")
    token_file.chmod(0o644)
    config = tmp_path / "g.toml"
    config.write_text(
        '[api]\nurl = "http://user:hunter2222@printers.example.org/api?key=qwerty123"\n'
        f'token_file = "{token_file}"\n[[printers]]\nhost = "127.0.0.1"\n'
    )
    config.chmod(0o644)
    result = cli.on(config).run("check-config")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr
    assert "the credentials in api.url in" in warnings
    assert f"api.token_file {token_file} can be read by other users" in warnings
    assert "clear text to printers.example.org" in warnings
    assert "only 5 characters" in warnings
    for secret in ("hunter2222", "qwerty123", "short"):
        assert secret not in result.stdout


def test_inline_token_in_a_readable_config_is_warned_about(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "g.toml"
    config.write_text(GOOD.replace("http://127.0.0.1:9", "https://api.example.org"))
    config.chmod(0o644)
    result = cli.on(config).run("check-config")
    assert "api.token in" in result.stderr
    config.chmod(0o600)
    assert "api.token in" not in cli.on(config).run("check-config").stderr


def test_queue_output_never_carries_a_printers_terminal_tricks(
    configs: ConfigFactory, cli: Cli
) -> None:
    from gateway.messages import Event, utc_now
    from services.uplink.queue import DurableQueue

    path, config = configs.written({"printer1": {}}, gateway_id=None)
    nasty = "\x1b[2Jevil\u202egx.exe\u2028fake line\x85.gx"
    queue = DurableQueue(Layout.of(config).queue_db, 10**8)
    queue.accept([Event(id="e1", printer_id="p", ts=utc_now(), event="print_started", file=nasty)])
    queue.close()
    output = cli.on(path).run("queue", "peek").stdout
    assert output.rstrip("\n").isprintable()
    assert msgspec.json.decode(output)["file"] == nasty  # the same JSON, escaped


def test_queue_dead_stays_json_for_a_record_nobody_could_read(
    configs: ConfigFactory, cli: Cli
) -> None:
    import sqlite3

    from gateway.messages import Event, utc_now
    from services.uplink.queue import DurableQueue

    config_path, config = configs.written({"printer1": {}}, gateway_id=None)
    path = Layout.of(config).queue_db
    queue = DurableQueue(path, 10**8)
    queue.accept([Event(id="e1", printer_id="p", ts=utc_now(), event="printer_online")])
    batch = queue.claim(1, 10**6)
    assert batch is not None
    queue.dead_letter(batch, "the queued record cannot be read")
    queue.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE dead SET body = ?", (b'\xff\x00 not json {"',))
    lines = cli.on(config_path).run("queue", "dead").stdout.splitlines()
    assert [msgspec.json.decode(line)["reason"] for line in lines] == [
        "the queued record cannot be read"
    ]


def test_api_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    """Without uvicorn (the [api] extra), `api` says what to install and exits 2, not a
    traceback."""
    code = (
        "import sys; sys.modules['uvicorn'] = None; from console.cli import main; "
        "sys.exit(main(['api', '--port', '0', '--db', sys.argv[1]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "api.db")],
        capture_output=True,
        text=True,
        env={**os.environ, "PRINTER_GATEWAY_TOKEN": "t" * 20},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "install the [api] extra" in result.stderr
    assert "Traceback" not in result.stderr
