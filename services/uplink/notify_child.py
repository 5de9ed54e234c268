"""One notification through Apprise, in a short-lived child process of the uplink.

Apprise and the services it brings (about 28 MiB) are needed a few times per print; the
uplink lives for months on a Pi with a few hundred MB. So the uplink never imports it: for
each notification it starts ``python -m services.uplink.notify_child``, writes the URLs and
the message to its stdin as JSON (never on the command line: URLs carry secrets, and argv
is visible to every user), and reads the exit code: 0 sent, 1 not sent, 2 a URL Apprise does
not understand (the key is named on stderr, never the URL).
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import TYPE_CHECKING

import msgspec

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.logs import setup_logging
from gateway.redaction import register_secret, register_url_secrets

if TYPE_CHECKING:
    import apprise

SENT, NOT_SENT, BAD_URL = 0, 1, 2
DEADLINE_S = 110  # its own end, should the uplink that waits for it be gone (SIGALRM)


class Notification(msgspec.Struct, frozen=True):
    """What the uplink hands the child."""

    urls: tuple[str, ...]
    title: str
    body: str
    attachments: tuple[str, ...] = ()  # files to attach (a camera snapshot)


def apprise_for(config: Config) -> apprise.Apprise:
    """An Apprise object with every ``notify.urls`` entry; ConfigError naming a bad one."""
    return _apprise(config.notify.urls)


def _apprise(urls: tuple[str, ...] | list[str]) -> apprise.Apprise:
    # Imported here, not at the top: the uplink imports this module for the message shape
    # and the exit codes, and must not load Apprise with them.
    import apprise

    target = apprise.Apprise()
    for index, url in enumerate(urls):
        if not target.add(url):
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            raise ConfigError(
                f"notify.urls[{index}]", f"Apprise does not understand this URL (scheme {scheme!r})"
            )
    return target


def main() -> int:
    """Send the notification on stdin; the exit code says how it went."""
    signal.alarm(DEADLINE_S)
    notification = msgspec.json.decode(sys.stdin.buffer.read(), type=Notification)
    for url in notification.urls:  # Apprise may quote a URL: every line is redacted first
        register_secret(url)
        register_url_secrets(url)
    setup_logging()
    # Apprise logs every notification (INFO) and every failure (WARNING): the uplink logs a
    # failure streak once, so only Apprise's errors are worth a line (on stderr, which the
    # uplink logs).
    logging.getLogger().setLevel(logging.ERROR)
    try:
        target = _apprise(notification.urls)
    except ConfigError as err:
        sys.stderr.write(f"{err}\n")
        return BAD_URL
    sent = target.notify(
        title=notification.title,
        body=notification.body,
        attach=list(notification.attachments) or None,
    )
    return SENT if sent else NOT_SENT


if __name__ == "__main__":
    sys.exit(main())
