"""A link to a customer's card in its CRM, from the account name the state keeps (`bitrix:<portal>`,
`amocrm:<host>`), so a report or a page can send a manager straight to the card."""

from __future__ import annotations

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def card_url(account: str, customer_id: str, kind: str = "contact") -> str | None:
    """The card's address, or None when the account names no CRM we know."""
    crm, _, host = account.partition(":")
    if not host or not customer_id:
        return None
    scheme = "http" if host.rsplit(":", 1)[0].strip("[]") in LOCAL_HOSTS else "https"
    if crm == "bitrix":
        from connector.bitrix.links import card_path
    elif crm == "amocrm":
        from connector.amocrm.links import card_path
    else:
        return None
    return f"{scheme}://{host}{card_path(customer_id, kind)}"
