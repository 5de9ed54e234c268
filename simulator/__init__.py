"""A FlashForge/REX printer simulator speaking the port-8899 protocol over TCP (§6)."""

from simulator.model import PrinterModel, PrintJob
from simulator.server import Faults, PrinterSimulator, SimulatorThread, WireEntry

__all__ = ["Faults", "PrintJob", "PrinterModel", "PrinterSimulator", "SimulatorThread", "WireEntry"]
