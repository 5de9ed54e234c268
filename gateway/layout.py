"""Where every file and socket of one gateway lives: one object, derived from the config.

Two roots, chosen for what they cost on a Pi:

* ``data_dir`` (the SD card; durable): the uplink's queue, control's ledger, one poller
  journal per printer and, unless ``$PRINTER_GATEWAY_LOG_DIR`` says otherwise, the logs;
* ``runtime_dir`` (tmpfs; gone at reboot, free to rewrite): the ZeroMQ ``ipc://`` endpoints,
  supervisord's socket and pid file, and the health facts ``printer-gateway status`` reads.

Nothing else builds a path under either root. Whoever writes a file makes its folder with
``files.private_dir`` (owner-only when created): the one routine that creates a directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.errors import ConfigError

LOG_DIR_ENV = "PRINTER_GATEWAY_LOG_DIR"
# A unix socket's path must fit sockaddr_un.sun_path: 108 bytes with the closing NUL on
# Linux (unix(7)). ZeroMQ's ipc:// and supervisord's socket are both bound by it; past it,
# supervisord exits at start ("AF_UNIX path too long") and the gateway never runs.
SOCKET_PATH_MAX = 107
# supervisord binds "<socket>.<pid>" first and then links it into place: room for a pid.
SUPERVISOR_TEMP_SUFFIX = len(".4194304")


@dataclass(frozen=True)
class Layout:
    """The paths and endpoints of one gateway (the config's two roots, already absolute)."""

    data_dir: Path
    runtime_dir: Path

    @classmethod
    def of(cls, config: Config) -> Layout:
        """The layout of a loaded config."""
        return cls(Path(config.gateway.data_dir), Path(config.gateway.runtime_dir))

    # --- durable, under data_dir -------------------------------------------------------

    @property
    def queue_db(self) -> Path:
        """The uplink's durable queue."""
        return self.data_dir / "uplink" / "queue.db"

    @property
    def ledger_db(self) -> Path:
        """Control's ledger of command ids."""
        return self.data_dir / "control" / "ledger.db"

    def journal(self, printer_id: str) -> Path:
        """The poller's state file of one printer (belief, unsent events, command outcomes)."""
        return self.data_dir / "poller" / f"{printer_id}.json"

    def job_checkpoint(self, printer_id: str) -> Path:
        """The open job's once-a-minute checkpoint (runtime_dir: tmpfs, no SD wear)."""
        return self.runtime_dir / "jobs" / f"{printer_id}.json"

    def jobs_log(self, printer_id: str) -> Path:
        """The recent print jobs of one printer, a JSON record a line (``printer-gateway
        jobs``)."""
        return self.data_dir / "poller" / f"{printer_id}.jobs.jsonl"

    @property
    def gateway_lock(self) -> Path:
        """Held by ``up`` and its supervisord: one gateway per data directory."""
        return self.data_dir / "gateway.lock"

    @property
    def log_dir(self) -> Path:
        """``$PRINTER_GATEWAY_LOG_DIR``, else ``<data_dir>/logs``."""
        return Path(os.environ.get(LOG_DIR_ENV) or self.data_dir / "logs")

    # --- sockets, under runtime_dir ------------------------------------------------------

    @property
    def records_endpoint(self) -> str:
        """Where the uplink receives records (poller and control send there)."""
        return self._ipc("records.ipc")

    @property
    def control_endpoint(self) -> str:
        """Where control takes commands injected by other services."""
        return self._ipc("control.ipc")

    @property
    def tap_endpoint(self) -> str:
        """Where the uplink publishes accepted records for ``printer-gateway tap``."""
        return self._ipc("tap.ipc")

    def poller_endpoint(self, printer_id: str) -> str:
        """Where the poller of one printer takes commands."""
        return self._ipc(f"poller-{printer_id}.ipc")

    @property
    def supervisor_socket(self) -> Path:
        """supervisord's XML-RPC socket (``supervisord.conf`` names the same file)."""
        return self.runtime_dir / "supervisor.sock"

    def service_lock(self, service: str) -> Path:
        """Held by the process that runs `service` (``poller``, ``poller-<id>``, ``uplink``...)."""
        return self.runtime_dir / f"{service}.lock"

    def service_locks(self) -> dict[str, Path]:
        """Every service lock file there is, by service (a file outlives its holder)."""
        folder = self.runtime_dir
        found = sorted(folder.glob("*.lock")) if folder.is_dir() else []
        return {path.name.removesuffix(".lock"): path for path in found}

    # --- health facts, under runtime_dir ------------------------------------------------

    @property
    def starts_dir(self) -> Path:
        """``<service>``: starts since ``up`` began."""
        return self.runtime_dir / "starts"

    @property
    def printers_dir(self) -> Path:
        """``<printer_id>.json``: each printer's state, lease and last contact."""
        return self.runtime_dir / "printers"

    @property
    def live_lane(self) -> Path:
        """The uplink's live lane: its counters and the statuses waiting in memory."""
        return self.runtime_dir / "live.json"

    @property
    def uplink_health(self) -> Path:
        """The uplink's queue, delivery and upload figures, for the metrics service."""
        return self.runtime_dir / "uplink.json"

    @property
    def problems_dir(self) -> Path:
        """``<service>.json``: what each service finds wrong right now."""
        return self.runtime_dir / "problems"

    def socket_files(self, printer_ids: list[str]) -> list[Path]:
        """Every unix socket this gateway binds, for these printers."""
        endpoints = [self.records_endpoint, self.control_endpoint, self.tap_endpoint]
        endpoints += [self.poller_endpoint(printer_id) for printer_id in printer_ids]
        return [self.supervisor_socket] + [Path(e.removeprefix("ipc://")) for e in endpoints]

    def _ipc(self, name: str) -> str:
        return f"ipc://{self.runtime_dir / name}"


def check_socket_room(config: Config) -> None:
    """ConfigError naming ``gateway.runtime_dir`` when a socket under it would not fit a
    unix socket address; said at load time, not found later in supervisord's own log."""
    layout = Layout.of(config)
    needs = {
        str(path): len(bytes(path)) for path in layout.socket_files([p.id for p in config.printers])
    }
    temporary = f"{layout.supervisor_socket}.<pid>"
    needs[temporary] = len(bytes(layout.supervisor_socket)) + SUPERVISOR_TEMP_SUFFIX
    longest = max(needs, key=lambda name: needs[name])
    if needs[longest] > SOCKET_PATH_MAX:
        raise ConfigError(
            "gateway.runtime_dir",
            f"{layout.runtime_dir} is too long: the socket {Path(longest).name} there would "
            f"be {needs[longest]} bytes long, and unix sockets allow {SOCKET_PATH_MAX}; "
            "choose a shorter directory (the default is /run/printer-gateway)",
        )
