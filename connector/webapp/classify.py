"""What the robots answer, from an evaluation: a customer's classification, a purchase's calendar.

CRM-neutral: the adapters turn these dicts into their own return values (Bitrix24 robots'
RETURN_PROPERTIES). Dates are ISO strings, missing values empty strings (robot properties are typed).
"""

from __future__ import annotations

from datetime import date, timedelta

from playbooks import Evaluation


def _report(evaluation: Evaluation, customer_id: str | None):
    if customer_id is None:
        return None
    return next((c for c in evaluation.customers if c.customer_id == customer_id), None)


def classification(evaluation: Evaluation, customer_id: str | None) -> dict[str, str]:
    """Segment, RFM code, tier, lifecycle and the expected next purchase of one customer.

    The next purchase is the last one plus the customer's average gap between purchases; a customer
    with one purchase (no rhythm yet) or none (a prospect) has no date.
    """
    c = _report(evaluation, customer_id)
    if c is None:
        return {"segment": "no_purchases", "rfm": "", "tier": "", "lifecycle": "prospect", "value": "",
                "next_purchase_date": ""}
    nxt = ""
    if c.purchases >= 2 and c.first_purchase and c.last_purchase and c.last_purchase > c.first_purchase:
        gap = (c.last_purchase - c.first_purchase).days / (c.purchases - 1)
        nxt = (c.last_purchase + timedelta(days=max(1, round(gap)))).isoformat()
    return {"segment": c.segment, "rfm": c.rfm, "tier": c.tier, "lifecycle": c.lifecycle, "value": c.value,
            "next_purchase_date": nxt}


def calendar(evaluation: Evaluation, plan, customer_id: str | None, purchase_id: str | None, playbook,
             today: date) -> dict[str, object]:
    """How many of this purchase's calendar steps the run planned now, and when the next one falls due."""
    ours = [a for a in plan if a.customer_id == customer_id and a.rule == "calendar"
            and (purchase_id is None or a.anchor_purchase_id == purchase_id)]
    c = _report(evaluation, customer_id)
    upcoming: list[date] = []
    config = playbook.rule("calendar") if hasattr(playbook, "rule") else None
    if c is not None and c.last_purchase and config is not None:
        upcoming = [c.last_purchase + timedelta(days=s.day) for s in config.steps
                    if c.last_purchase + timedelta(days=s.day) > today]
    return {"planned_actions": len(ours), "next_step_date": min(upcoming).isoformat() if upcoming else ""}
