"""``printer-gateway queue stats|peek|dead|retry|purge`` and ``printer-gateway tap``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import msgspec

from gateway.bus import TapSubscriber
from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import DECODE_ERRORS, json_encoder
from gateway.redaction import escape, escape_json, redact, safe
from services.uplink.live import LiveSnapshot, read_snapshot
from services.uplink.queue import DurableQueue


def _out(data: object) -> None:
    _line(msgspec.json.format(msgspec.json.encode(data), indent=2))


def _line(data: bytes) -> None:
    """Write one JSON output line, redacted (a stored reason may quote a server's error
    page) and with a printer's bidi overrides or line separators escaped."""
    lines = redact(data.decode("utf-8", "replace")).split("\n")  # an indented document's
    sys.stdout.buffer.write("\n".join(escape_json(line) for line in lines).encode() + b"\n")


def queue_command(config: Config, args: argparse.Namespace) -> int:
    """Inspect or repair the durable queue (and see the live lane's statuses waiting in the
    uplink's memory); 0 on success, 1 when a purge was not confirmed."""
    layout = Layout.of(config)
    path = layout.queue_db
    if not path.exists():
        print(f"no queue at {path} (the uplink has not run with this config)", file=sys.stderr)
        return 1
    queue = DurableQueue(path, config.uplink.max_queue_mb * 1024 * 1024)
    try:
        return _act(queue, path, read_snapshot(layout.live_lane), args)
    finally:
        queue.close()


def _as_json(body: bytes) -> msgspec.Raw | str:
    """A stored body as JSON: itself when it is JSON (almost always), else as a string (a
    record the uplink could not read, kept for inspection): every output line stays JSON."""
    try:
        msgspec.json.decode(body)
    except DECODE_ERRORS:
        return body.decode("utf-8", "replace")
    return msgspec.Raw(body)


def _act(
    queue: DurableQueue, path: Path, live: LiveSnapshot | None, args: argparse.Namespace
) -> int:
    if args.action == "stats":
        stats = queue.stats()
        last_error = None if stats.last_error is None else safe(stats.last_error)
        _out(
            {
                "queue": str(path),
                **dataclasses.asdict(stats),
                "last_error": last_error,
                "live": None if live is None else live.stats,  # statuses in memory
            }
        )
    elif args.action == "peek":  # the disk's records first (delivered first), then memory's
        bodies = queue.peek(args.limit)
        for body in bodies:
            _line(msgspec.json.encode(_as_json(body)))
        waiting = () if live is None else live.waiting[: args.limit - len(bodies)]
        for status in waiting:
            _line(json_encoder.encode(status))
        if not bodies and not waiting:  # on stderr: the output stays JSON lines for scripts
            print("nothing queued: every record was delivered", file=sys.stderr)
    elif args.action == "dead":
        for reason, body in queue.dead_letters(args.limit):
            _line(msgspec.json.encode({"reason": safe(reason), "record": _as_json(body)}))
    elif args.action == "retry":
        print(f"{queue.retry_dead()} dead-lettered records moved back to the queue")
    elif args.action == "purge":
        if not args.yes:
            answer = input(f"delete every queued and dead record in {path}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        print(f"{queue.purge()} records deleted")
    return 0


def tap_command(config: Config, args: argparse.Namespace) -> int:
    """Print records as the uplink accepts them, until Ctrl-C."""
    tap = TapSubscriber(Layout.of(config).tap_endpoint)
    count = 0
    print(  # on stderr: stdout is the records (JSON lines with --json)
        "waiting for records the uplink accepts (statuses come every poll while a print "
        "runs, every probe otherwise); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        while args.count == 0 or count < args.count:
            data = tap.receive()
            count += 1
            if args.json:
                _line(data)
            else:
                record = msgspec.json.decode(data)
                what = record.get("state") or record.get("event") or record.get("outcome")
                printer = record.get("printer_id") or "-"
                lane = "live" if record.get("kind") == "status" else "reliable"
                line = f"{record.get('ts')} {lane:<8} {record.get('kind'):<14} {printer:<10} {what}"
                print(escape(redact(line)))  # a printer's text must not drive the terminal
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        tap.close()
    return 0
