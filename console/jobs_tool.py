"""``printer-gateway jobs``: the recent print jobs this gateway recorded (architecture §4.2,
§4.3 job records), newest first, from each printer's local list (services/poller/jobs_log.py).
A file name came from a printer: shown through ``visible`` (no terminal control)."""

from __future__ import annotations

import argparse
import sys

from console.discover_report import visible
from gateway.config import Config
from gateway.layout import Layout
from gateway.messages import Job, json_encoder
from services.poller.jobs_log import JobsLogError, read_jobs

OUTCOMES = {
    "completed": "completed",
    "cancelled": "cancelled",
    "failed": "FAILED",
    "interrupted": "interrupted",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The jobs verb's options."""
    parser.add_argument("--printer", metavar="ID", help="only this printer")
    parser.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="one job record per line")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def run(config: Config, args: argparse.Namespace) -> int:
    """Print the jobs; 0 (an empty list says so)."""
    layout = Layout.of(config)
    printers = [config.printer(args.printer)] if args.printer else list(config.printers)
    try:
        jobs: list[Job] = [job for p in printers for job in read_jobs(layout.jobs_log(p.id))]
    except JobsLogError as err:
        print(f"printer-gateway jobs: {err}", file=sys.stderr)
        return 1
    jobs.sort(key=lambda job: job.ended_at, reverse=True)
    jobs = jobs[: max(1, args.limit)]
    if args.json:
        for job in jobs:
            sys.stdout.buffer.write(json_encoder.encode(job) + b"\n")
        return 0
    if not jobs:
        print("no print jobs recorded yet (a job is recorded when a print ends)")
        return 0
    print(
        f"{'ENDED (UTC)':<16} {'PRINTER':<12} {'OUTCOME':<12} {'PRINTING':>10} {'PAUSED':>8}  FILE"
    )
    for job in jobs:
        paused = f"{job.pause_count}x" if job.pause_count else "-"
        print(
            f"{job.ended_at:%Y-%m-%d %H:%M} {visible(job.printer_id or '-', 12):<12} "
            f"{OUTCOMES[job.outcome]:<12} {_duration(job.print_s):>10} {paused:>8}  "
            f"{visible(job.file or '-', 80)}"
        )
    return 0
