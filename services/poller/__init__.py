"""The poller: the only code that opens a printer's TCP socket."""
