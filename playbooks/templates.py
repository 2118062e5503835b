"""Message templates: the placeholders a playbook text may use, and their rendering.

Placeholders are checked when the playbook loads (an unknown one is a PlaybookError), so
rendering never fails: a value the customer lacks renders as an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

PLACEHOLDERS: frozenset[str] = frozenset({
    "name",           # the customer's name
    "products",       # products of the anchor purchase, comma separated
    "product",        # one product (replenishment, cross-sell)
    "cycle_reason",   # why the product's cycle was assumed (replenishment: [rules.replenishment.why])
    "offer",          # the offered products (cross-sell)
    "suggestions",    # learned cross-sell suggestions for this customer
    "tier", "next_tier", "to_next_tier", "benefits", "next_benefits",
    "manager",        # the responsible manager's id
    "purchase_date",  # the anchor purchase's date (YYYY-MM-DD)
    "amount",         # the anchor purchase's amount with currency
    "currency",
    "days",           # days of silence / days since the purchase
    "segment", "lifecycle",
    "holiday",        # the holiday's title
    "sale",           # the sale's title (promo)
    "date",           # the step's due date
    "score",          # the customer's 0-10 answer to the feedback question (nps)
    "code",           # the customer's personal referral code (referral, nps)
    "bonus",          # the referral bonus with currency (referral, nps)
    "bonus_balance",  # the customer's bonus balance with currency (playbooks.bonus); empty without bonuses
    "bonus_expires",  # the next day some bonuses burn (YYYY-MM-DD); empty when none do
    "bonus_expiring", # how much burns that day, with currency
})


# what a customer may read: no segment or stage slugs, no manager id, no note meant for the manager
CUSTOMER_PLACEHOLDERS: frozenset[str] = PLACEHOLDERS - {"segment", "lifecycle", "manager", "cycle_reason",
                                                        "suggestions"}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill `{placeholders}`; missing values become empty strings, never an exception."""
    return render_with(template, filled(values)) if template else ""


def filled(values: Mapping[str, object]) -> Mapping[str, object]:
    """The values as render fills them (None and unknown names read empty), for several templates."""
    return _Blank({k: "" if v is None else v for k, v in values.items()})


def render_with(template: str, blank: Mapping[str, object]) -> str:
    """render() with the values already `filled`."""
    return template.format_map(blank) if template else ""


def render_for_customer(template: str, values: Mapping[str, object]) -> tuple[str, list[str]]:
    """The text a customer reads, and the placeholders it names that have no value for this customer
    (such a text is held back, never sent with a hole in it)."""
    return render(template, values), missing_values(template, values)


def missing_values(template: str, values: Mapping[str, object]) -> list[str]:
    """The placeholders `template` names that have no value (None or empty) among `values`."""
    return sorted({n for n in placeholders(template or "") if values.get(n) in (None, "")})


@lru_cache(maxsize=1024)
def placeholders(template: str) -> tuple[str, ...]:
    """The placeholders a template names (a playbook has a few dozen templates, each read once)."""
    import string

    return tuple(name for _lit, name, _spec, _conv in string.Formatter().parse(template) if name)


def money(amount: float, currency: str) -> str:
    """`1234.5, "RUB"` -> `1 234.50 RUB`: readable in both languages."""
    whole = f"{amount:,.2f}".replace(",", " ")
    if whole.endswith(".00"):
        whole = whole[:-3]
    return f"{whole} {currency}"
