"""The ``printer-gateway`` command and the operator's tools (up, status, demo, queue, tap,
check-config) and the generators of the documents in docs/: the top layer, which may use
every other package; nothing imports it."""
