"""Seeded Bitrix24 emulators: a shared read-only one per module, a fresh one per writing test."""

from __future__ import annotations

import pytest
from bx_support import CUSTOMERS, SEED, TODAY

from emulators.bitrix import BitrixEmulator


@pytest.fixture(scope="module")
def shared():
    """Read-only tests share one emulator (they must not write)."""
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu


@pytest.fixture
def emu():
    with BitrixEmulator(customers=CUSTOMERS, seed=SEED, today=TODAY) as emu:
        yield emu
