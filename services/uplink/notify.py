"""Notifications (Discord, Telegram, e-mail, ... through Apprise) for the events chosen in
``[notify]``, sent by the uplink for events it stores for the first time.

Best effort by design: a notification is tried once, on a worker thread so a slow service
never holds up acknowledgements; a bounded backlog (dropped and counted when full) keeps a
dead notification service from eating memory. URLs carry secrets: they are never logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable

import apprise

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.health import Problems
from gateway.loops import LoopGuard, guarded_thread_loop
from gateway.messages import Event, EventName, Record

logger = logging.getLogger(__name__)
BACKLOG = 100
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


def apprise_for(config: Config) -> apprise.Apprise:
    """An Apprise object with every ``notify.urls`` entry; ConfigError naming a bad one."""
    target = apprise.Apprise()
    for index, url in enumerate(config.notify.urls):
        if not target.add(url):
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise ConfigError(
                f"notify.urls[{index}]", f"Apprise does not understand this URL (scheme {scheme!r})"
            )
    return target


class Notifier:
    """Sends one notification per chosen, newly stored event."""

    def __init__(self, config: Config, problems: Problems | None = None) -> None:
        # Apprise logs every notification (INFO) and every failure (WARNING): this class
        # logs a failure streak once, so only Apprise's errors are worth a line.
        logging.getLogger("apprise").setLevel(logging.ERROR)
        self.apprise = apprise_for(config)
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
        if self.apprise.notify(title=title, body=body):
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
