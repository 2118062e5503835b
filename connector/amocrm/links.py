"""Where a contact's or company's card opens in an amoCRM account."""

from __future__ import annotations


def card_path(customer_id: str, kind: str = "contact") -> str:
    """`/contacts/detail/42` (the card's address in the account)."""
    return f"/{'companies' if kind == 'company' else 'contacts'}/detail/{customer_id}"
