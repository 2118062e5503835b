"""Request counts of every CRM's pull against the API's lower bound, on a shop of ~9,000 deals.

The small version of benchmarks/scale_sync.py: counts only, never timings. The lower bound is
ceil(items / items-per-request) for each list (Bitrix24: 2,500 rows a `batch` of 50 pages of 50;
amoCRM: 250 a page, a lead's products riding inside the lead); the harness knows each CRM's.
"""

from __future__ import annotations

import pytest

CUSTOMERS = 1500  # ~8,800 deals, ~15,000 product rows
SEED = 11
WITHIN = 1.15  # the target: a full pull within 1.15x of the lower bound


@pytest.fixture(scope="module")
def big_crm(crm_class):
    with crm_class(customers=CUSTOMERS, seed=SEED) as harness:
        yield harness


@pytest.fixture(scope="module")
def full(big_crm):
    """One full pull, shared by the module's tests: what it read, what it cost, per list."""
    big_crm.emulator.reset_stats()
    seen, used = big_crm.pull()
    return seen, used, big_crm.emulator.stats()["requests_total"], big_crm.list_requests(seen)


def test_full_pull_is_within_115_percent_of_the_lower_bound_and_every_list_costs_its_pages(big_crm, full):
    seen, used, counted, lists = full
    assert len(seen.purchases) > 7000, "a shop of thousands of deals"
    assert counted == used, "the adapter counts every request it makes"
    assert used <= WITHIN * big_crm.pull_lower_bound(seen)
    assert used <= big_crm.pull_request_bound(seen)
    for name, (pages, most) in lists.items():
        assert pages <= most, f"{name}: {pages} requests, at most {most}"


def test_incremental_pull_is_proportional_to_what_changed(big_crm, full):
    seen_full, used_full, _counted, _lists = full
    cursor, results = seen_full.cursor, {}
    for share in (0.01, 0.05):
        won = sorted(big_crm.won_purchases(), key=int)
        touched = won[:: round(1 / share)]
        for pid in touched:
            big_crm.set_amount(pid, 1234)
        big_crm.emulator.reset_stats()
        seen, used = big_crm.pull(cursor)
        results[share] = (len(touched), seen, used, big_crm.list_requests(seen))
        cursor = seen.cursor
    for touched, seen, used, lists in results.values():
        assert touched <= len(seen.purchases) + len(seen.removed) <= touched + 5, \
            "the changed deals, plus the few in the re-read window"
        assert len(seen.customers) == 0
        for name, (pages, most) in lists.items():
            assert pages <= most, f"{name}: {pages} requests, at most {most}"
        assert used <= big_crm.pull_request_bound(seen)
    assert results[0.05][2] < used_full / 2
