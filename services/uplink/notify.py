"""Notifications (Discord, Telegram, e-mail, ... through Apprise) for the events chosen in
``[notify]``: one per event, from the reliable lane, retried until sent.

Theory of operation
-------------------
* **Owed durably.** When the uplink stores a chosen event for the first time, the same
  commit writes a row to the queue file's ``outbox`` (``DurableQueue.accept_new``). So a
  notification is owed exactly when its event is durable: a kill after the acknowledgement
  cannot lose it, and a re-sent event (already known) never owes a second one.
* **Sent on a worker thread** with its own connection to the queue file, oldest first:
  nothing else waits for it. Sent -> the row is deleted. Not sent -> tried again after
  10 s, 20 s, 40 s ... at most ``MAX_BACKOFF_S``, timed in memory on the monotonic clock
  (a failing notification service must not cost a disk write per attempt; after a restart
  the owed ones are tried again at once); after ``GIVE_UP_S`` (the row's wall-clock age)
  and at least ``GIVE_UP_ATTEMPTS`` tries it is dropped (logged, counted): a day-old "print
  started" helps nobody, and the count keeps a clock set right after boot (a Pi has no RTC)
  from making a fresh one look old.
* **At least once.** A kill between Apprise's success and the row's deletion sends it
  again after the restart: a rare duplicate is better than a lost "print finished".
* **Apprise** runs in a short-lived child per notification (``notify_child.py``): this
  process, which lives for months, never imports it. URLs carry secrets: never logged.
* **A picture** for finished, cancelled and paused, when ``snapshot`` is on and the printer
  has a camera (``camera_url``, or mjpg-streamer's usual address on the printer's host): the
  first whole JPEG of its stream, within ``snapshot.DEADLINE_S``. A camera that fails is
  left alone for ``CAMERA_REST_S``, so a dead camera costs one short wait now and then and
  never the text, which goes without the picture.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from gateway.config import Config, PrinterSection
from gateway.files import private_dir
from gateway.health import Problems
from gateway.layout import Layout
from gateway.loops import LoopGuard, guarded_thread_loop
from gateway.messages import DECODE_ERRORS, Event, EventName, Record
from gateway.templates import render
from services.uplink.queue import DurableQueue
from services.uplink.snapshot import SnapshotError, snapshot

logger = logging.getLogger(__name__)
SEND_TIMEOUT_S = 120.0  # Apprise's own timeouts are shorter; this bounds a stuck child
FIRST_BACKOFF_S = 10.0
MAX_BACKOFF_S = 1800.0
GIVE_UP_S = 24 * 3600.0
GIVE_UP_ATTEMPTS = 20  # and at least this many tries: a clock set right after boot is no age
CAMERA_REST_S = 600.0
IDLE_WAIT_S = 1.0  # the worker looks at the outbox at least this often
OUTBOX_LOOK = 100  # owed notifications looked at per turn, oldest first
SNAPSHOT_EVENTS: frozenset[EventName] = frozenset(
    {"print_finished", "print_cancelled", "print_paused"}
)
TITLES: dict[EventName, str] = {
    "print_started": "print started",
    "print_finished": "print finished",
    "print_cancelled": "print cancelled",
    "print_paused": "print paused",
    "print_resumed": "print resumed",
    "printer_online": "printer online",
    "printer_offline": "printer offline",
    "printer_lost_while_printing": "printer lost while printing",
    "printer_held_by_other_client": "printer held by another client",
}
_event_decoder = msgspec.json.Decoder(Event)


def duration_text(seconds: float) -> str:
    """A duration as a person says it: "1 h 5 min", "12 min", "40 s"."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes = round(total / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def message_values(event: Event, printer_name: str) -> dict[str, str]:
    """The template fields for an event (``gateway.templates.FIELDS``); what the event does
    not say is left empty."""
    detail: dict[str, Any] = event.detail
    values = {
        "printer": printer_name,
        "file": event.file or "",
        "state": TITLES[event.event],
        "outcome": str(detail.get("outcome", "")),
    }
    progress = detail.get("progress_percent")
    if isinstance(progress, int | float):
        values["progress"] = f"{progress:.0f} %"
    duration = detail.get("print_s")
    if isinstance(duration, int | float):
        values["duration"] = duration_text(duration)
    eta = detail.get("eta")
    if isinstance(eta, str):
        values["eta"] = eta
    return values


def default_body(event: Event, values: dict[str, str]) -> str:
    """The message when the owner wrote no template for this event."""
    text = TITLES[event.event].capitalize()
    if values.get("file"):
        text += f": {values['file']}"
    if values.get("duration"):
        text += f" ({values['duration']} printing)"
    return text + f" ({event.ts:%Y-%m-%d %H:%M} UTC)"


class Notifier:
    """Owes and sends one notification per chosen, newly stored event (see the module)."""

    def __init__(self, config: Config, layout: Layout, problems: Problems | None = None) -> None:
        self.config = config
        self.layout = layout
        self.urls = config.notify.urls
        self.enabled = bool(config.notify.urls)
        self.events = frozenset(config.notify.events)
        self.printers = {printer.id: printer for printer in config.printers}
        self.guard = LoopGuard("notifications", problems or Problems(None, "notify"))
        self.sent = 0
        self.failed = 0  # consecutive failures
        self.dropped = 0
        self.pictures = 0
        self._camera_rest: dict[str, float] = {}  # printer id -> monotonic time it may retry
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink-notify", daemon=True)
        self._queue: DurableQueue | None = None
        # Retries are timed in memory (monotonic): a failing notification service costs no
        # disk write per attempt; after a restart the owed ones are tried again at once.
        self._retry: dict[int, tuple[int, float]] = {}  # outbox pos -> (failures, next try)

    def wanted(self, record: Record) -> bool:
        """Whether a newly stored record is owed a notification."""
        return self.enabled and isinstance(record, Event) and record.event in self.events

    def start(self) -> None:
        """Start the worker (a no-op without URLs)."""
        if self.enabled:
            self._thread.start()

    def offer(self, records: Iterable[Record]) -> None:
        """Newly stored records (their notifications are already owed): wake the worker."""
        if any(self.wanted(record) for record in records):
            self._wake.set()

    def stop(self) -> None:
        """Stop the worker; what is owed stays owed, for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SEND_TIMEOUT_S + 5)

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        try:
            guarded_thread_loop(self.guard, self._send_next, self._stopping)
        finally:
            if self._queue is not None:
                self._queue.close()

    def _send_next(self) -> None:
        if self._queue is None:
            self._queue = DurableQueue(
                self.layout.queue_db, self.config.uplink.max_queue_mb * 1024 * 1024
            )
        owed = self._queue.outbox_oldest(OUTBOX_LOOK)
        now = time.monotonic()
        due = [item for item in owed if self._retry.get(item.pos, (0, 0.0))[1] <= now]
        if not due:  # sleep until the next retry is due, a new one is owed, or a while
            soonest = min(
                (self._retry[i.pos][1] for i in owed if i.pos in self._retry), default=None
            )
            wait = IDLE_WAIT_S if soonest is None else min(IDLE_WAIT_S, max(0.0, soonest - now))
            self._wake.wait(wait)
            self._wake.clear()
            return
        item = due[0]
        attempts = self._retry.get(item.pos, (0, 0.0))[0]
        try:
            event = _event_decoder.decode(item.body)
        except DECODE_ERRORS as err:  # written by this code; a bug, or a newer version's
            logger.error("an owed notification cannot be read (%s): dropped", err)
            self._done(item.pos)
            return
        age = time.time() - item.made_at
        if age > GIVE_UP_S and attempts >= GIVE_UP_ATTEMPTS:
            self.dropped += 1
            logger.warning(
                "a notification could not be sent for %s: dropped (%s)",
                duration_text(age),
                TITLES[event.event],
            )
            self._done(item.pos)
            return
        if self._send(event, item.pos):
            self._done(item.pos)
        else:
            self._retry[item.pos] = (attempts + 1, time.monotonic() + self._backoff(attempts))

    def _done(self, pos: int) -> None:
        assert self._queue is not None
        self._queue.outbox_done(pos)
        self._retry.pop(pos, None)

    @staticmethod
    def _backoff(attempts: int) -> float:
        return float(min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** min(attempts, 20)))

    def _send(self, event: Event, pos: int) -> bool:
        printer = self.printers.get(event.printer_id or "")
        name = printer.name if printer is not None else (event.printer_id or "gateway")
        values = message_values(event, name)
        template = self.config.notify.templates.get(event.event)
        title = f"{name}: {TITLES[event.event]}"
        body = render(template, values) if template else default_body(event, values)
        picture = self._picture(event, printer, pos)
        try:
            sent = self._send_in_child(title, body, () if picture is None else (picture,))
        finally:
            if picture is not None:
                os.unlink(picture)
        if sent:
            self.sent += 1
            if self.failed:
                logger.info("notifications work again")
            self.failed = 0
        else:
            self.failed += 1
            if self.failed == 1:
                logger.warning(
                    "a notification could not be sent (%s); retried, later failures are not logged",
                    title,
                )
        return sent

    def _picture(self, event: Event, printer: PrinterSection | None, pos: int) -> str | None:
        """A snapshot file for this event, or None (no camera, not this event, or the camera
        failed: then the text goes alone)."""
        if not self.config.notify.snapshot or event.event not in SNAPSHOT_EVENTS:
            return None
        url = None if printer is None else printer.camera()
        if printer is None or url is None:
            return None
        if time.monotonic() < self._camera_rest.get(printer.id, 0.0):
            return None
        try:
            jpeg = snapshot(url)
            folder = self.layout.runtime_dir / "snapshots"
            private_dir(folder)
            path = folder / f"{printer.id}-{pos}.jpg"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(jpeg)
        except (SnapshotError, OSError) as err:  # no picture: never a reason to hold the text
            self._camera_rest[printer.id] = time.monotonic() + CAMERA_REST_S
            logger.info(
                "no snapshot from %s's camera (%s): notifications go without a picture for %d min",
                printer.id,
                err,
                CAMERA_REST_S // 60,
            )
            return None
        self.pictures += 1
        return str(path)

    def _send_in_child(self, title: str, body: str, attachments: tuple[str, ...]) -> bool:
        """One notification through Apprise in a child process (see ``notify_child``)."""
        from services.uplink.notify_child import BAD_URL, SENT, Notification

        message = msgspec.json.encode(Notification(tuple(self.urls), title, body, attachments))
        try:
            child = subprocess.run(
                [sys.executable, "-m", "services.uplink.notify_child"],
                input=message,
                capture_output=True,
                timeout=SEND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            logger.warning("the notification process failed: %s", err)
            return False
        said = child.stderr.decode("utf-8", "replace").strip()  # redacted by the child
        if child.returncode != SENT and said and not self.failed:  # once a failure streak
            level = logging.ERROR if child.returncode == BAD_URL else logging.WARNING
            logger.log(level, "notification: %s", said[-500:])
        return child.returncode == SENT
