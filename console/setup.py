"""``printer-gateway setup``: from a fresh install to a running gateway, asking only what
cannot be found.

The steps, in order, and why in that order:

1. **Printer.** Discovery (the same probes as ``discover``) lists the printers that answer;
   the owner picks one or more by number, or types the address shown on the printer's
   screen when the network drops broadcast and multicast.
2. **API.** With ``--web-app URL`` (the installer's web-app mode) the reference API runs on
   this machine: its address and its token file are already known, nothing is asked.
   Otherwise the API's address, and its token at a hidden prompt. The token goes from the
   prompt straight into the token file: never on a command line (shell history, ``ps``),
   never in an environment (``/proc/<pid>/environ``).
3. **Files.** The config is built as text, then parsed by the gateway's own loader before
   anything is written, so setup can never leave a config the services refuse. Config
   0640 (group: the service's user), token 0600 (owned by the service's user); both
   written to a temporary file and renamed, so a reader never sees half a file.
4. **Check.** ``check-config --connect``'s checks (the printer's read-only probe, one
   authenticated request to the API). Only when every check passes is the service
   started: a gateway that cannot reach its printer or whose token is refused would only
   restart-loop. On a failure the files are kept and the command to try again is said.
5. **Start.** Where the systemd unit the installer wrote exists, ``systemctl enable`` and
   ``restart`` it (restart, so a second setup's new config is taken); elsewhere the command
   that starts it in the foreground is said.

Exit codes: 0 set up, 1 a check failed (files kept, nothing started), 2 bad input or no
answers (stdin closed: setup is interactive; answers may come on stdin for scripts).
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from console import discover as discover_cli
from console import discover_net as net
from console import discover_report as report
from gateway.config import (
    Config,
    check_api_url,
    find_config_path,
    in_clear_text,
    load_config,
    parse_config,
    register_secrets,
    resolve_token,
    sendable_token,
)
from gateway.errors import ConfigError
from gateway.files import write_atomically
from gateway.layout import check_socket_room

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_UNITS = Path("/etc/systemd/system")
GATEWAY_UNIT = "printer-gateway.service"
ATTEMPTS = 3  # a question asked again after a bad answer, then setup gives up


class SetupAborted(Exception):
    """No usable answer (stdin closed, or the same question answered wrong too often)."""


@dataclass(frozen=True)
class PrinterChoice:
    """One printer for the config: what discovery found, or an address typed in."""

    id: str
    name: str
    host: str
    port: int
    comment: str


@dataclass(frozen=True)
class Plan:
    """Everything the config will say."""

    printers: Sequence[PrinterChoice]
    api_url: str
    token_file: Path
    data_dir: str | None
    runtime_dir: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the setup verb's options (the installer passes the paths it laid out)."""
    parser.add_argument(
        "--web-app",
        metavar="URL",
        help="the reference API runs on this machine at URL, its token in --token-file",
    )
    parser.add_argument(
        "--web-app-page",
        metavar="URL",
        help="with --web-app: the page's address for other machines (default: this host's)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="where the API token is (--web-app) or goes (default: token beside the config)",
    )
    parser.add_argument("--data-dir", help="gateway.data_dir to write (default: the key's)")
    parser.add_argument("--runtime-dir", help="gateway.runtime_dir to write")
    parser.add_argument("--user", help="the service's user: owns the token, reads the config")
    parser.add_argument(
        "--discover-to",
        metavar="HOST[:PORT]",
        help="ask this address only, instead of the whole LAN",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"discovery and each check wait this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--units",
        type=Path,
        default=DEFAULT_UNITS,
        metavar="DIR",
        help=f"where the installer put {GATEWAY_UNIT} (default {DEFAULT_UNITS})",
    )
    parser.add_argument(
        "--no-start", action="store_true", help="write and check, but start nothing"
    )


class Prompter:
    """Questions on `out`, answers from `answers`: a terminal, or lines from a script. A
    secret is read without echo when `answers` is a terminal."""

    def __init__(self, answers: TextIO, out: TextIO) -> None:
        self.answers = answers
        self.out = out

    def ask(self, question: str, default: str | None = None) -> str:
        shown = f"{question} [{default}]: " if default else f"{question}: "
        answer = self._line(shown).strip()
        return answer or (default or "")

    def secret(self, question: str) -> str:
        if self.answers.isatty():
            try:
                return getpass.getpass(f"{question} (not shown as you type): ", stream=self.out)
            except EOFError as err:  # Ctrl-D at the prompt
                raise SetupAborted("no answer") from err
        return self._line(f"{question}: ", echo=False).strip()

    def yes(self, question: str) -> bool:
        return self.ask(f"{question} [y/N]").lower() in ("y", "yes")

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _line(self, prompt: str, *, echo: bool = True) -> str:
        self.out.write(prompt)
        self.out.flush()
        line = self.answers.readline()
        if not line:
            raise SetupAborted("no answer (input closed): run it in a terminal")
        if not self.answers.isatty():  # a script's answer: show it, so the transcript reads
            self.out.write((line.rstrip("\n") if echo else "(not shown)") + "\n")
        return line


def run(args: argparse.Namespace) -> int:
    """The whole set-up; see the module docstring for the steps and exit codes."""
    prompter = Prompter(sys.stdin, sys.stdout)
    try:
        return _run(args, prompter)
    except SetupAborted as err:
        print(f"printer-gateway setup: {err}; nothing was started", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nprinter-gateway setup: interrupted; nothing was started", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, prompter: Prompter) -> int:
    if not 0 < args.timeout <= 60:
        print("printer-gateway setup: --timeout must be above 0 and at most 60", file=sys.stderr)
        return 2
    config_path = find_config_path(args.config)
    token_file = (args.token_file or config_path.parent / "token").absolute()
    if args.web_app and not _readable_token(token_file):
        print(
            f"printer-gateway setup: --web-app needs its token in {token_file} "
            "(the installer's --with-web-app writes it)",
            file=sys.stderr,
        )
        return 2
    before = None
    if config_path.exists():
        if not prompter.yes(f"{config_path} exists. Replace it?"):
            prompter.say(f"Kept {config_path}; `printer-gateway check-config --connect` checks it.")
            return 0
        before = _earlier(config_path)

    prompter.say("\n1/4 Your printer")
    printers = choose_printers(prompter, args.discover_to, args.timeout)
    prompter.say("\n2/4 Where the gateway reports")
    token: str | None = None
    if args.web_app:
        api_url = args.web_app
        prompter.say(f"The web app on this machine ({api_url}), with its token in {token_file}.")
    else:
        api_url = ask_url(prompter, before.api.url if before else None)
        token = ask_token(prompter, token_file if _readable_token(token_file) else None)
    data_dir, runtime_dir = args.data_dir, args.runtime_dir
    if os.geteuid() != 0:  # the defaults (/var/lib, /run) are root's: keep it beside the config
        here = config_path.absolute().parent
        data_dir, runtime_dir = data_dir or str(here / "data"), runtime_dir or str(here / "run")
    plan = Plan(printers, api_url, token_file, data_dir, runtime_dir)

    prompter.say("\n3/4 Writing the config")
    text = config_text(plan, datetime.date.today())
    # never write what the services would refuse
    check_socket_room(parse_config(text.encode(), config_path.absolute().parent))
    owner = _service_user(args.user)
    try:
        if token is not None:
            write_private(token_file, token + "\n", mode=0o600, owner=owner, group=owner)
            prompter.say(f"Wrote {token_file} (mode 600: only the service reads it)")
        write_private(config_path, text, mode=0o640, owner=None, group=owner)
    except OSError as err:
        print(
            f"printer-gateway setup: cannot write {err.filename}: {err.strerror}; "
            "setup writes the gateway's config: run it as root (sudo)",
            file=sys.stderr,
        )
        return 2
    prompter.say(f"Wrote {config_path}")

    prompter.say("\n4/4 Checking that this machine reaches them")
    from console import connection_check  # requests and the poller's link: only when checking

    config = load_config(config_path)
    register_secrets(config)
    checked = connection_check.run(config, resolve_token(config, environ={}), args.timeout)
    if checked != 0:
        prompter.say(
            "\nNot started: fix what failed above, then run `printer-gateway setup` again "
            f"(or edit {config_path} and run `printer-gateway check-config --connect`)."
        )
        return 1
    return start(args, prompter, plan)


def choose_printers(
    prompter: Prompter, discover_to: str | None, timeout_s: float
) -> list[PrinterChoice]:
    """The printers discovery finds, chosen by number, or an address typed in."""
    target = None
    try:
        if discover_to:
            target = discover_cli.split_target(discover_to)
        address = net.resolve(target[0]) if target else None
    except (ValueError, OSError) as err:
        raise SetupAborted(f"--discover-to {discover_to!r}: {err}") from err
    where = f"Asking {discover_to}" if discover_to else "Looking for printers on this network"
    prompter.say(f"{where} ({timeout_s:g} s)...")
    try:
        found = discover_cli.find(target, address, timeout_s).found
    except discover_cli.SearchFailed as err:
        prompter.say(f"Discovery could not run ({err}).")
        found = []
    if found:
        for number, line in enumerate(report.table(found).splitlines()):
            prompter.say(f"  {number or '#'}  {line}" if number else f"     {line}")
    else:
        prompter.say(
            "No printer answered. On the printer: is its network on (Settings > WiFi or "
            "Ethernet) and on the same network as this machine? Its screen shows its address."
        )
    for _ in range(ATTEMPTS):
        hint = "number(s) like 1 or 1,2, or the printer's address" if found else "its address"
        answer = prompter.ask(f"Which printer? ({hint})", "1" if len(found) == 1 else None)
        try:
            chosen = pick(answer, found)
        except ValueError as err:
            prompter.say(f"  {err}")
            continue
        unknown = [p.host for p in chosen if not _resolves(p.host, p.port)]
        if not unknown:
            return chosen
        prompter.say(
            f"  {unknown[0]!r} is not an address this machine can find: type the one the "
            "printer's screen shows, like 192.168.1.50"
        )
    raise SetupAborted("no printer chosen")


def pick(answer: str, found: Sequence[report.Found]) -> list[PrinterChoice]:
    """The printers an answer names: numbers from the list (comma-separated), or one
    ``HOST[:PORT]``; ValueError saying what is wrong."""
    answer = answer.strip()
    if not answer:
        raise ValueError("type a number from the list or an address")
    numbers = [part.strip() for part in answer.split(",")]
    if all(part.isdigit() for part in numbers):
        chosen = []
        for part in numbers:
            if not 1 <= int(part) <= len(found):
                raise ValueError(f"{part} is not in the list (1..{len(found)})")
            chosen.append(found[int(part) - 1])
        return _from_found(list(dict.fromkeys(chosen)))
    if any(c.isspace() for c in answer) or "/" in answer:
        raise ValueError(f"{answer!r} is not an address (like 192.168.1.50)")
    try:
        host, port = discover_cli.host_and_port(answer, report.DEFAULT_TCP_PORT)
    except ValueError:
        example = "like 192.168.1.50 or 192.168.1.50:8899"
        raise ValueError(f"{answer!r} is not an address ({example})") from None
    return [PrinterChoice("printer1", f"Printer at {host}", host, port, "typed in at setup")]


def _from_found(found: Sequence[report.Found]) -> list[PrinterChoice]:
    ids: list[str] = []
    chosen = []
    for item in found:
        reply = item.reply
        name = report.visible(reply.name, 255)
        ids.append(report.printer_id(name, ids))
        serial = report.visible(reply.serial, 64) or "none given"
        chosen.append(
            PrinterChoice(
                ids[-1],
                name or ids[-1],
                item.address,
                reply.command_port or report.DEFAULT_TCP_PORT,
                f"{reply.model}, serial {serial}, found by discovery",
            )
        )
    return chosen


def ask_url(prompter: Prompter, before: str | None) -> str:
    """The API's address: http:// or https:// and a host (the earlier config's, offered)."""
    for _ in range(ATTEMPTS):
        url = prompter.ask("The API's address (like https://printers.example.org/api)", before)
        try:
            check_api_url(url)
        except ConfigError:
            prompter.say("  It starts with https:// (or http://) and names a host.")
            continue
        if in_clear_text(url):
            prompter.say("  Note: over http:// the token travels in clear text; https:// is safer.")
        return url
    raise SetupAborted("no API address")


def ask_token(prompter: Prompter, kept: Path | None) -> str | None:
    """The API's token: one word, not empty; None keeps the one already in `kept`."""
    question = f"The API's token (Enter keeps the one in {kept})" if kept else "The API's token"
    for _ in range(ATTEMPTS):
        token = prompter.secret(question)
        if not token and kept:
            return None
        if token and sendable_token(token):
            return token
        prompter.say(
            "  The token is one word of printable ASCII, no spaces; your API's settings show it."
        )
    raise SetupAborted("no API token")


def config_text(plan: Plan, today: datetime.date) -> str:
    """The config file, every value a TOML string written by one escaper."""
    quote = report.toml_string
    lines = [
        f"# Written by `printer-gateway setup` on {today.isoformat()}. Every key is in",
        "# docs/configuration.md; `printer-gateway check-config --connect` checks this file.",
        "",
        "[gateway]",
    ]
    if plan.data_dir:
        lines.append(f"data_dir = {quote(plan.data_dir)}")
    if plan.runtime_dir:
        lines.append(f"runtime_dir = {quote(plan.runtime_dir)}")
    lines += ["", "[api]", f"url = {quote(plan.api_url)}"]
    lines += [f"token_file = {quote(str(plan.token_file))}", ""]
    for printer in plan.printers:
        lines += [
            f"# {report.visible(printer.comment)}",
            "[[printers]]",
            f"id = {quote(printer.id)}",
            f"name = {quote(printer.name)}",
            f"host = {quote(printer.host)}",
            f"port = {printer.port}",
            "",
        ]
    return "\n".join(lines)


User = pwd.struct_passwd


def write_private(
    path: Path, text: str, *, mode: int, owner: User | None, group: User | None
) -> None:
    """Write `text` whole (temp file and rename) with its mode and, when run as root for a
    service user, its owner already set when it takes the name: the service never meets
    the file half-written or not yet its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = None
    if os.geteuid() == 0 and (owner or group):
        ids = (owner.pw_uid if owner else 0, group.pw_gid if group else 0)
    write_atomically(path, text.encode(), durable=True, mode=mode, owner=ids)


def start(args: argparse.Namespace, prompter: Prompter, plan: Plan) -> int:
    """Start the gateway (systemd where the installer put its unit), and say where to look."""
    unit = args.units / GATEWAY_UNIT
    systemctl = shutil.which("systemctl")
    if args.no_start:
        prompter.say(
            "\nAll checks passed. Start it with `printer-gateway up` "
            "(in the foreground; Ctrl-C stops it)."
        )
    elif unit.exists() and systemctl:
        for verb in ("enable", "restart"):
            done = subprocess.run([systemctl, verb, GATEWAY_UNIT], check=False)
            if done.returncode != 0:
                prompter.say(f"\n`systemctl {verb} {GATEWAY_UNIT}` failed: see its message above.")
                return 1
        prompter.say(f"\nAll checks passed; {GATEWAY_UNIT} is enabled and running.")
    else:
        prompter.say("\nAll checks passed. Start it with `printer-gateway up`.")
    prompter.say("`printer-gateway status` says how it goes.")
    if args.web_app:
        port = urllib.parse.urlsplit(args.web_app).port or 80
        page = args.web_app_page or web_app_address(port)
        prompter.say(f"The web app: {page} (on this machine {args.web_app}).")
        prompter.say(f"It asks for its token once: `sudo cat {plan.token_file}` shows it.")
    return 0


def web_app_address(port: int) -> str:
    """The address other machines on the LAN reach the web app at: this host's first
    non-loopback IPv4 address (``hostname -I``, which sends nothing), else its name."""
    hostname = shutil.which("hostname")
    if hostname:
        listed = subprocess.run([hostname, "-I"], capture_output=True, text=True, check=False)
        for address in listed.stdout.split():
            if "." in address and not address.startswith("127."):
                return f"http://{address}:{port}/"
    return f"http://{socket.gethostname()}.local:{port}/"


def _earlier(config_path: Path) -> Config | None:
    """The config being replaced, for its answers as defaults (None when it does not load)."""
    try:
        return load_config(config_path)
    except ConfigError:
        return None


def _resolves(host: str, port: int) -> bool:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return True


def _readable_token(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def _service_user(name: str | None) -> pwd.struct_passwd | None:
    if not name:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as err:
        raise SetupAborted(f"--user {name!r}: no such user") from err
