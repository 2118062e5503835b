"""A fresh, seeded amoCRM account emulator per test."""

from __future__ import annotations

import pytest
from amo_support import CUSTOMERS, SEED, TODAY

from emulators.amocrm import AmoEmulator


@pytest.fixture
def account():
    with AmoEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu
