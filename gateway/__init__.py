"""printer-gateway: watch and control networked FlashForge-family printers."""

__version__ = "0.1.0"
