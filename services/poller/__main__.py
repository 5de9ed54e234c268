"""``python -m services.poller`` is ``printer-gateway run poller``."""

import sys

from gateway.cli import main

sys.exit(main(["run", "poller", *sys.argv[1:]]))
