"""The Pi install script, run into a temporary root: layout, modes, and an upgrade that keeps
the config, the token and the queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "install-pi.sh"


def install(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "PRINTER_GATEWAY_TOKEN": "pi-token-123"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--no-systemd"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_install_then_upgrade_keeps_config_token_and_queue(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    etc, data = root / "etc" / "printer-gateway", root / "var" / "lib" / "printer-gateway"
    cli = root / "opt" / "printer-gateway" / "venv" / "bin" / "printer-gateway"
    assert (mode(etc), mode(etc / "gateway.toml"), mode(etc / "token"), mode(data)) == (
        "0o750",
        "0o640",
        "0o600",
        "0o700",
    )
    assert (etc / "token").read_text().strip() == "pi-token-123"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTER_GATEWAY")}
    checked = subprocess.run(
        [str(cli), "--config", str(etc / "gateway.toml"), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert f'"data_dir": "{data}"' in checked.stdout
    assert "pi-token-123" not in checked.stdout
    unit = (root / "etc" / "systemd" / "system" / "printer-gateway.service").read_text()
    assert "ExecStart=/opt/printer-gateway/venv/bin/printer-gateway up" in unit
    assert "RuntimeDirectoryMode=0700" in unit
    assert (root / "opt" / "printer-gateway" / "src" / "supervisord.conf").exists()

    (data / "uplink").mkdir()
    (data / "uplink" / "queue.db").write_bytes(b"queued records")
    with (etc / "gateway.toml").open("a") as config:
        config.write("# edited by the owner\n")
    second = install(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert (data / "uplink" / "queue.db").read_bytes() == b"queued records"
    assert (etc / "gateway.toml").read_text().endswith("# edited by the owner\n")
    assert "wrote" not in second.stdout  # neither config nor token was rewritten
