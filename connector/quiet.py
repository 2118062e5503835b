"""An event's sync asks first whether anything changed: the app's own writes come back as events.

Every card field, repeat deal or task the app writes into the CRM comes back as a CRM event
(Bitrix24 ONCRMCONTACTUPDATE / ONCRMDEALADD..., amoCRM webhooks), and an event payload says only
which record changed, not who changed it (Doc: api-reference/events/index.md - `data[FIELDS][ID]`
and `auth`; event-bind.md - the handler runs as the user whose action set the event off, so a
portal's admin working by hand and the app that admin installed look alike). So the record itself
decides: a sync is a function of the snapshot, the day, the playbook and the ledger. When the last
complete run planned from the same day, playbook and cursor (`State.settled`), nothing waits in the
ledger, and the incremental pull finds every changed record equal to the snapshot's copy except in
the values the app writes itself (its card fields and segment tag), the sync has nothing to do: it
ends there, with no run, no evaluation and no write. Anything else - a deal closed, a phone or an
opt-out edited by a manager, even on a card the app has just written - makes it a full sync.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import date

from connector.crm import CrmAdapter, PullPage
from connector.errors import CrmError
from connector.fields import FIELD_NAMES, SEGMENT_TAG_PREFIX
from connector.snapshot import customer_to_json, purchase_to_json
from connector.state import State

log = logging.getLogger(__name__)

# the values the app writes on cards, as each CRM's pull names them: Bitrix24 `UF_CRM_RS_SEGMENT`
# (connector/bitrix/fields.py), amoCRM the field code `RS_SEGMENT` in lower case (connector/amocrm/fields.py)
OWN_FIELDS = frozenset({f"UF_CRM_RS_{n.upper()}" for n in FIELD_NAMES} | {f"rs_{n}" for n in FIELD_NAMES})


def settled_mark(state: State, account: str, today: date, playbook_as: str) -> dict:
    """What a complete run planned from (run_sync keeps it): the snapshot up to its cursor, the day, the playbook."""
    cursor = state.cursor(account)
    return {"cursor": cursor.modified_since if cursor else None, "day": today.isoformat(), "playbook": playbook_as}


def nothing_to_do(adapter: CrmAdapter, state: State, today: date, playbook_as: str) -> bool:
    """True when the changes since the last complete run are the app's own (the caller holds the
    state's sync lock). At the first page holding anything else it stops, the cursor where it was, so
    the full sync that follows reads the change itself (its run says what it pulled); a page it kept
    leaves the snapshot unsettled, so no later check skips before a run planned from it."""
    account = adapter.account
    cursor = state.cursor(account)
    if cursor is None or state.settled(account) != settled_mark(state, account, today, playbook_as):
        return False
    if state.pull_position(account) is not None or state.unfinished(account):
        return False  # a pull to finish, a write to retry: the full sync's work
    last = None
    try:
        for page in adapter.pull(cursor):
            if _differs(state, account, page):  # the full sync reads it again from the same cursor, and plans
                return False
            state.absorb(account, page, run_id=0)  # the app's own values, kept as the CRM holds them
            last = page.cursor or last
    except CrmError as exc:  # the full sync reads it all again and says what failed
        log.info("quiet check account=%s: the pull stopped (%s); a full sync follows", account, exc)
        return False
    if last is not None:
        state.save_cursor(account, last)
    state.settle(account, settled_mark(state, account, today, playbook_as))
    return True


def _differs(state: State, account: str, page: PullPage) -> bool:
    """Whether the page holds anything a playbook reads that the snapshot does not hold already."""
    cards, bought = state.stored(account, (c.id for c in page.customers),
                                 [p.id for p in page.purchases] + list(page.removed_purchase_ids))
    if any(i in bought for i in page.removed_purchase_ids):  # a purchase no longer won (a repeat deal never was)
        return True
    if any(bought.get(p.id) != purchase_to_json(p) for p in page.purchases):
        return True
    if any(c.id not in cards or _as_read(cards[c.id]) != _as_read(customer_to_json(c)) for c in page.customers):
        return True
    if page.products:
        held = state.products(account)
        return any(p.id not in held or asdict(held[p.id]) != asdict(p) for p in page.products)
    return False


def _as_read(card: str) -> dict:
    """A customer's snapshot JSON without the values the app itself writes on the card."""
    data = json.loads(card)
    data["fields"] = {k: v for k, v in (data.get("fields") or {}).items() if k not in OWN_FIELDS}
    data["tags"] = sorted(t for t in data.get("tags") or [] if not str(t).startswith(SEGMENT_TAG_PREFIX))
    return data
