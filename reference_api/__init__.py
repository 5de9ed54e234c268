"""The reference API server (architecture §4.5): an optional extra, ``pip install .[api]``."""
