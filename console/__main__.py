"""``python -m console`` is ``printer-gateway``."""

import sys

from console.cli import main

sys.exit(main())
