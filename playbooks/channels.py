"""Which of a step's channels reaches this customer, tried in the order the playbook lists them.

A channel is passed over when the customer refused it (the card field named by
`guards.opt_out.channels_field`), when the card lacks what it needs (an e-mail address, a phone), or
when the text would go out with a placeholder this customer has no value for. Each passed-over
channel is kept in `payload["tried"]` as `[channel, reason]`, so the manager task that may end the
list says why; the CRM may pass over more of them when it writes (connector.delivery).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from connector.model import Action, ActionKind, Customer
from playbooks.schema import OptOutConfig

KIND_OF = {"email": ActionKind.EMAIL, "messenger": ActionKind.MESSAGE, "sms": ActionKind.SMS,
           "task": ActionKind.TASK}
NEEDS = {"email": ("emails", "no_email"), "sms": ("phones", "no_phone")}
# what a manager may type into the refused-channels field, besides the channels' own names
SYNONYMS = {"e-mail": "email", "mail": "email", "почта": "email", "письма": "email", "смс": "sms",
            "мессенджер": "messenger", "мессенджеры": "messenger", "whatsapp": "messenger",
            "telegram": "messenger", "чат": "messenger"}


def refused_channels(customer: Customer, cfg: OptOutConfig) -> set[str]:
    """Channels the customer's card says they refused ("email, sms"; any separator, either language)."""
    raw = customer.fields.get(cfg.channels_field) if cfg.channels_field else None
    words = re.split(r"[\s,;|/]+", str(raw or "").casefold())
    return {SYNONYMS.get(w, w) for w in words if w}


def is_touch(action: Action) -> bool:
    """A step that names its channels (it reaches the customer through the CRM when it can)."""
    return bool(action.payload.get("channels"))


def route(action: Action, customer: Customer, cfg: OptOutConfig) -> Action | str:
    """The action delivered by the first channel that can reach this customer, or why none can.

    Every channel this customer cannot be reached by is kept in `payload["blocked"]` with its
    reason, so a channel the CRM cannot use later moves on to the next open one (`next_channel`).
    """
    channels: list[str] = list(action.payload.get("channels") or ())
    missing = action.payload.get("missing")
    refused = refused_channels(customer, cfg)
    blocked: dict[str, str] = {}
    for channel in channels:
        need = NEEDS.get(channel)
        if channel == "task":
            continue
        if missing:
            blocked[channel] = "missing_value"
        elif channel in refused:
            blocked[channel] = "refused"
        elif need and not getattr(customer, need[0]):
            blocked[channel] = need[1]
        elif channel == "messenger" and not customer.has_channel:
            blocked[channel] = "no_contact"  # a chat is started from a phone or an address the card holds
    to = {"email": customer.emails[0] if customer.emails else "", "phone": customer.phones[0] if customer.phones else ""}
    for channel in channels:
        if channel not in blocked:  # deliver_by's action, made in one copy (the guards route ~80,000 touches)
            tried = [[c, blocked[c]] for c in channels[:channels.index(channel)]]
            return replace(action, kind=KIND_OF[channel], payload={**action.payload, "blocked": blocked, "tried": tried,
                                                                   "to": to, "via": channel})
    if missing:
        return "missing_value"
    return "opt_out" if blocked and all(r == "refused" for r in blocked.values()) else "no_channel"


def deliver_by(action: Action, channel: str, tried: list[list[str]]) -> Action:
    """The action as the given channel delivers it; `channel` stays the step's first choice."""
    return replace(action, kind=KIND_OF[channel], payload={**action.payload, "via": channel, "tried": tried})


def next_channel(action: Action, reason: str, can: Iterable[ActionKind]) -> Action | None:
    """After the CRM could not use the action's channel (`reason`), the next open one it can use, or None."""
    channels = list(action.payload.get("channels") or ())
    blocked = dict(action.payload.get("blocked") or {})
    via = str(action.payload.get("via") or "")
    tried = [*map(list, action.payload.get("tried") or []), [via, reason]]
    able = set(can) | {ActionKind.TASK}
    for channel in channels[channels.index(via) + 1 if via in channels else len(channels):]:
        if channel in blocked:
            tried.append([channel, blocked[channel]])
        elif KIND_OF[channel] in able:
            return deliver_by(action, channel, tried)
        else:
            tried.append([channel, "not_supported"])
    return None
