"""What every CRM emulator shares: one HTTP server, one fault injector, one request counter, one control
API (`Emulator`) and one standalone runner. A CRM's package keeps only what is its own."""

from .emulator import Emulator, control_error
from .faults import DROP, Faults, parse_fault_spec
from .http import JSON, EmulatorHandler, EmulatorHTTPServer
from .stats import RequestStats

__all__ = ["DROP", "JSON", "Emulator", "EmulatorHTTPServer", "EmulatorHandler", "Faults", "RequestStats",
           "control_error", "parse_fault_spec"]
