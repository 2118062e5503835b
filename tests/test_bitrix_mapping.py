"""Real portal quirks in payloads: string numbers, empty strings for nulls, offsets, currencies."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from connector.bitrix import mapping
from connector.errors import CrmRecordError

DEAL = {"ID": "410", "TITLE": "Заказ", "STAGE_SEMANTIC_ID": "S", "CLOSEDATE": "2026-03-31T23:30:00+03:00",
        "OPPORTUNITY": "1500.00", "CURRENCY_ID": "USD", "CONTACT_ID": "7", "COMPANY_ID": "0",
        "ASSIGNED_BY_ID": "3", "DATE_MODIFY": "2026-04-01T10:00:00+03:00"}
ROWS = [{"productId": 12, "productName": "Фильтр", "quantity": 2, "price": 700},
        {"productId": 0, "productName": "Доставка", "quantity": 1, "price": "100.00"}]


def test_string_numbers_and_currency_are_kept_as_the_portal_sent_them():
    p = mapping.purchase_from_deal(DEAL, ROWS, "contact", None)
    assert (p.id, p.customer_id, p.amount, p.currency, p.manager_id) == ("410", "7", 1500.0, "USD", "3")
    assert [(i.product_id, i.quantity, i.price) for i in p.items] == [("12", 2.0, 700.0), (None, 1.0, 100.0)]


def test_the_purchase_day_is_the_day_the_portal_wrote_whatever_the_timezone():
    """CLOSEDATE is a date: the portal writes it as UTC midnight in its offset (crm-deal-get.md)."""
    deal = {**DEAL, "CLOSEDATE": "2026-03-31T03:00:00+03:00"}
    for tz in (None, ZoneInfo("UTC"), ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")):
        assert mapping.purchase_from_deal(deal, [], "contact", tz).date == date(2026, 3, 31)
    # without CLOSEDATE the last change, a moment, is seen in TIMEZONE
    changed = {**DEAL, "CLOSEDATE": "", "DATE_MODIFY": "2026-03-31T23:30:00+03:00"}
    assert mapping.purchase_from_deal(changed, [], "contact", None).date == date(2026, 3, 31)
    assert mapping.purchase_from_deal(changed, [], "contact", ZoneInfo("Asia/Tokyo")).date == date(2026, 4, 1)


def test_empty_strings_are_nulls():
    deal = {**DEAL, "OPPORTUNITY": "", "CURRENCY_ID": "", "ASSIGNED_BY_ID": "", "CLOSEDATE": ""}
    p = mapping.purchase_from_deal(deal, ROWS, "contact", None)
    assert p.amount == 2 * 700 + 100  # no amount on the deal: the sum of its rows
    assert p.currency == "RUB" and p.manager_id is None
    assert p.date == date(2026, 4, 1)  # no CLOSEDATE: the last change


def test_a_deal_without_its_customer_or_with_garbage_is_a_record_error_naming_the_field():
    with pytest.raises(CrmRecordError, match="company"):
        mapping.purchase_from_deal(DEAL, [], "company", None)  # COMPANY_ID "0" means none
    with pytest.raises(CrmRecordError, match="OPPORTUNITY"):
        mapping.purchase_from_deal({**DEAL, "OPPORTUNITY": "n/a"}, [], "contact", None)
    with pytest.raises(CrmRecordError, match="CLOSEDATE"):
        mapping.purchase_from_deal({**DEAL, "CLOSEDATE": "31.03.2026"}, [], "contact", None)


def test_contacts_keep_multifields_birthdays_and_the_opt_out_under_its_neutral_name():
    raw = {"ID": "7", "NAME": "Анна", "SECOND_NAME": "", "LAST_NAME": "Смирнова", "BIRTHDATE": "1990-02-03T00:00:00+03:00",
           "PHONE": [{"ID": "1", "VALUE": "+7 900 000-00-00", "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"},
                     {"ID": "2", "VALUE": "+7 900 000-00-00", "VALUE_TYPE": "MOBILE", "TYPE_ID": "PHONE"}],
           "EMAIL": [], "ASSIGNED_BY_ID": "3", "UF_CRM_RS_NO_MARKETING": "Y"}
    c = mapping.customer_from_contact(raw)
    assert (c.name, c.birthday, c.phones, c.emails) == ("Анна Смирнова", date(1990, 2, 3), ("+7 900 000-00-00",), ())
    assert c.fields["no_marketing"] == "1"
    bare = mapping.customer_from_contact({"ID": "8", "BIRTHDATE": "", "PHONE": None})
    assert (bare.name, bare.birthday, bare.phones, bare.has_channel) == ("#8", None, (), False)
