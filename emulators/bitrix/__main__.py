"""`python -m emulators.bitrix [flags]`: a standalone emulator (see cli.py)."""

import sys

from .cli import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone())
