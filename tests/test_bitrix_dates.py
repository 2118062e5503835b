"""A date-only field keeps the day the portal wrote, whatever TIMEZONE says (issue 15, item 6).

The portal writes CLOSEDATE as the day's UTC midnight in its own offset ("2026-06-13T03:00:00+03:00"; Doc:
api-reference/crm/deals/crm-deal-get.md); read as a moment in a time zone west of UTC it fell on the day before.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
import requests

from connector.bitrix import BitrixAdapter


def pulled_purchase(portal, deal_id: int, timezone: str | None):
    adapter = BitrixAdapter(portal.webhook_url, timezone=timezone, requests_per_second=50.0, request_pool=250)
    try:
        for page in adapter.pull(None):
            for purchase in page.purchases:
                if purchase.id == str(deal_id):
                    return purchase
    finally:
        adapter.close()
    raise AssertionError(f"deal {deal_id} was not pulled")


@pytest.mark.parametrize("timezone", [None, "America/New_York", "Europe/Moscow", "Asia/Tokyo"])
def test_a_won_deal_is_a_purchase_on_the_day_its_closedate_names(portal, timezone):
    contact = sorted(portal.store.contacts.rows)[4]
    deal = portal.add_deal(contact, won=True, amount=1200, closed=datetime(2026, 6, 13, 12, 0))
    written = requests.post(portal.webhook_url + "crm.deal.get", json={"id": deal}, timeout=10).json()
    assert written["result"]["CLOSEDATE"] == "2026-06-13T03:00:00+03:00"  # as a Moscow portal writes a date
    assert pulled_purchase(portal, deal, timezone).date == date(2026, 6, 13)


def test_a_birthday_is_the_day_on_the_card_in_any_timezone(portal):
    contact = sorted(portal.store.contacts.rows)[2]
    r = requests.post(portal.webhook_url + "crm.contact.update",
                      json={"id": contact, "fields": {"BIRTHDATE": "1990-02-03"}}, timeout=10)
    assert r.json()["result"] is True
    adapter = BitrixAdapter(portal.webhook_url, timezone="America/Los_Angeles", requests_per_second=50.0,
                            request_pool=250)
    try:
        found = [c for page in adapter.pull(None) for c in page.customers if c.id == str(contact)]
    finally:
        adapter.close()
    assert found and found[0].birthday == date(1990, 2, 3)
