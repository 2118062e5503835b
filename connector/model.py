"""CRM-neutral records shared by adapters, playbooks and sync.

Adapters map their CRM's payloads into these; playbooks read them and return actions.
Everything is frozen so a plan is a pure function of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class ActionKind(StrEnum):
    """What an action turns into inside the CRM."""

    TASK = "task"  # a task for the manager (Bitrix24 tasks.task.add, amoCRM /api/v4/tasks)
    TAG = "tag"  # segment field / tag on the customer card
    DEAL = "deal"  # a repeat deal with products pre-filled
    WORKFLOW = "workflow"  # CRM automation start (business process / Salesbot)
    EMAIL = "email"  # an e-mail the CRM sends from its own mailbox (Bitrix24 crm.activity.add TYPE_ID=4)
    MESSAGE = "message"  # a message into the customer's existing messenger chat (open lines)
    SMS = "sms"  # an SMS through the CRM's provider (an automation the admin bound once)
    BOT = "bot"  # a bot run that sends our text into the customer's chat (amoCRM Salesbot)


class Channel(StrEnum):
    """How the customer is reached; decides who carries the step out."""

    EMAIL = "email"
    SMS = "sms"
    CALL = "call"  # a manager phones the customer
    MESSENGER = "messenger"  # WhatsApp, Telegram... wherever the CRM holds a chat with the customer
    TASK = "task"  # internal work for the manager, no customer contact channel needed


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue product; `cycle_days` is how long one unit lasts, when the CRM knows."""

    id: str
    name: str
    category: str | None = None
    price: float | None = None
    currency: str | None = None
    cycle_days: int | None = None
    term_days: int | None = None  # how long a licence, subscription or service interval runs


@dataclass(frozen=True, slots=True)
class LineItem:
    """One product row of a purchase."""

    product_id: str | None
    name: str
    quantity: float = 1.0
    price: float = 0.0
    category: str | None = None
    discount: float = 0.0  # money off one unit (the price is after it): a discounted purchase


@dataclass(frozen=True, slots=True)
class Purchase:
    """A won deal. `amount` is in `currency`; amounts are never summed across currencies."""

    id: str
    customer_id: str
    date: date
    amount: float
    currency: str = "RUB"
    items: tuple[LineItem, ...] = ()
    manager_id: str | None = None
    title: str = ""
    # deal (amoCRM lead) fields a playbook may name, e.g. the bonuses paid on it (`bonus_paid`);
    # None when the deal holds none (most do: no empty mapping per purchase)
    fields: Mapping[str, str] | None = None
    # the customer's 0-10 answer to "would you recommend us" about this purchase (a deal field), if any
    nps: int | None = None
    # the referral code the new customer brought (a deal/lead field); "" = none
    referral_code: str = ""
    promo: str = ""  # the promo code or campaign the deal was won with, when the CRM records one


@dataclass(frozen=True, slots=True)
class Customer:
    """A contact (or a company, in B2B) with the purchases the CRM holds for it.

    `fields` carries CRM values a playbook may name (e.g. an opt-out field); `tags` the
    customer's tags. `last_contact_activity` is the latest inbound activity the CRM saw,
    used as a "reaction" that stops reactivation chains.
    """

    id: str
    name: str = ""
    kind: str = "contact"  # contact | company
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    birthday: date | None = None
    manager_id: str | None = None
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, str] = field(default_factory=dict)
    purchases: tuple[Purchase, ...] = ()
    last_contact_activity: date | None = None
    created: date | None = None  # when the contact was created in the CRM (a prospect's welcome starts there)

    @property
    def has_channel(self) -> bool:
        return bool(self.emails or self.phones)


@dataclass(frozen=True, slots=True)
class Action:
    """One planned effect in the CRM, identified by a stable idempotency key.

    Keys read `v1:<customer>:<rule>:<anchor purchase>:<step>`: the same history and
    playbook give the same key on every run, which is what makes apply exactly-once.
    `payload` holds kind-specific data (deal products, field values, template id).
    """

    key: str
    kind: ActionKind
    customer_id: str
    rule: str
    step: str
    due: date
    title: str
    body: str = ""
    channel: Channel = Channel.TASK
    anchor_purchase_id: str | None = None  # the customer's purchase the step hangs on; None for a year or tier
    manager_id: str | None = None
    priority: int = 100
    payload: Mapping[str, object] = field(default_factory=dict)


def action_key(customer_id: str, rule: str, anchor: str | None, step: str) -> str:
    """The idempotency key of an action; `anchor` is the purchase (or period) it hangs on."""
    return f"v1:{customer_id}:{rule}:{anchor or '-'}:{step}"


def customer_of_key(key: str) -> str:
    """The customer an action_key names, for the CRM adapters (their customer ids are numbers: no ':' in
    them; playbooks.keys.parse_key reads any id)."""
    return key.split(":")[1]


def nps_score(value: object) -> int | None:
    """A deal field's 0-10 answer ("7", 7, " 10 ", 7.0); anything else (empty, "n/a", 11) is no answer."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    return int(text) if text.isdigit() and 0 <= int(text) <= 10 else None
