"""`python -m emulators.amocrm [flags]`: a standalone emulated account (see cli.py)."""

import sys

from emulators.amocrm.cli import run_standalone

if __name__ == "__main__":
    sys.exit(run_standalone())
