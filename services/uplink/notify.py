"""Notifications (Discord, Telegram, e-mail, ... through Apprise) for the events chosen in
``[notify]``, sent by the uplink for events it stores for the first time.

Best effort by design: a notification is tried once, on a worker thread so a slow service
never holds up acknowledgements; a bounded backlog (dropped and counted when full) keeps a
dead notification service from eating memory. URLs carry secrets: they are never logged.
Apprise itself runs in a short-lived child per notification (``notify_child.py``): this
process, which lives for months, never imports it.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable

import msgspec

from gateway.config import Config
from gateway.health import Problems
from gateway.loops import LoopGuard, guarded_thread_loop
from gateway.messages import Event, EventName, Record

logger = logging.getLogger(__name__)
BACKLOG = 100
SEND_TIMEOUT_S = 120.0  # Apprise's own timeouts are shorter; this bounds a stuck child
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


class Notifier:
    """Sends one notification per chosen, newly stored event."""

    def __init__(self, config: Config, problems: Problems | None = None) -> None:
        self.urls = config.notify.urls
        self.guard = LoopGuard("notifications", problems or Problems(None, "notify"))
        self.events = set(config.notify.events)
        self.names = {printer.id: printer.name for printer in config.printers}
        self.backlog: queue.Queue[Event] = queue.Queue(maxsize=BACKLOG)
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink-notify", daemon=True)
        self.enabled = bool(config.notify.urls)

    def start(self) -> None:
        """Start the worker (a no-op without URLs)."""
        if self.enabled:
            self._thread.start()

    def offer(self, records: Iterable[Record]) -> None:
        """Queue the chosen events among newly stored records."""
        if not self.enabled:
            return
        for record in records:
            if isinstance(record, Event) and record.event in self.events:
                try:
                    self.backlog.put_nowait(record)
                except queue.Full:
                    self.dropped += 1
                    if self.dropped in (1, 10) or self.dropped % 100 == 0:
                        logger.warning(
                            "notification backlog full: %d notifications dropped", self.dropped
                        )

    def stop(self) -> None:
        """Stop the worker (what is still queued is not sent)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        guarded_thread_loop(self.guard, self._send_next, self._stopping)

    def _send_next(self) -> None:
        try:
            event = self.backlog.get(timeout=0.2)
        except queue.Empty:
            return
        self._send(event)

    def _send(self, event: Event) -> None:
        name = self.names.get(event.printer_id or "", event.printer_id or "gateway")
        title = f"{name}: {TITLES[event.event]}"
        body = (
            f"{TITLES[event.event].capitalize()}"
            + (f": {event.file}" if event.file else "")
            + f" ({event.ts:%Y-%m-%d %H:%M} UTC)"
        )
        if self._send_in_child(title, body):
            self.sent += 1
            if self.failed:
                logger.info("notifications work again")
                self.failed = 0
        else:
            self.failed += 1
            if self.failed == 1:
                logger.warning(
                    "a notification could not be sent (%s); later failures are not logged", title
                )

    def _send_in_child(self, title: str, body: str) -> bool:
        """One notification through Apprise in a child process (see ``notify_child``)."""
        from services.uplink.notify_child import BAD_URL, SENT, Notification

        message = msgspec.json.encode(Notification(tuple(self.urls), title, body))
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
