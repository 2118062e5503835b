"""Where a contact's or company's card opens on a Bitrix24 portal."""

from __future__ import annotations


def card_path(customer_id: str, kind: str = "contact") -> str:
    """`/crm/contact/details/42/` (the card's address in the portal's CRM)."""
    return f"/crm/{'company' if kind == 'company' else 'contact'}/details/{customer_id}/"
