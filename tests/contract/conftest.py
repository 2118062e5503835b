"""The `crm` fixture: every scenario test runs once per CRM harness (ids `bitrix`, `amocrm`)."""

from __future__ import annotations

import pytest

from tests.contract.harness import registry

HARNESSES = registry()


@pytest.fixture(scope="module", params=list(HARNESSES))
def crm_class(request):
    """The harness class of one CRM: for tests that seed a shop of their own (size, seed, date)."""
    return HARNESSES[request.param]


@pytest.fixture
def crm(crm_class):
    """A fresh, seeded emulator of the CRM per test, with its harness."""
    with crm_class() as harness:
        yield harness


@pytest.fixture(scope="module")
def shared_crm(crm_class):
    """One emulator per module and CRM for tests that only read (a dry run writes nothing)."""
    with crm_class() as harness:
        yield harness
