"""The demo's MQTT broker: Debian's mosquitto on a loopback port when it is installed, so
`make demo` shows the MQTT bridge and Home Assistant discovery too (nothing to set up; no
broker, no MQTT: the demo says so and carries on)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto() -> str | None:
    """The broker's executable, or None."""
    return shutil.which("mosquitto") or next(
        (path for path in MOSQUITTO_PATHS if Path(path).exists()), None
    )


def start(folder: Path, port: int) -> subprocess.Popen[bytes] | None:
    """A broker on 127.0.0.1:`port` (anonymous, no persistence, its log in `folder`), or
    None when there is no mosquitto or it does not come up within 5 s."""
    executable = mosquitto()
    if executable is None:
        return None
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = (folder / "mosquitto.log").open("ab")
    process = subprocess.Popen(
        [executable, "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    process.kill()
    return None
