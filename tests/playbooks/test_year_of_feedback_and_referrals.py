"""A year of daily dry runs on the demo shop (pure engine): the nps and referral rules fire, and their
actions are held out, capped and guarded like every other rule's."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from pb_builders import playbook, synthetic_shop

from emulators.shop import DEMO_REFERRAL_SECRET
from playbooks import PlanHistory, evaluate
from playbooks.guards import is_holdout

END = date(2026, 6, 30)


def test_a_year_of_daily_runs_fires_nps_and_referral_within_the_guards():
    customers, catalogue = synthetic_shop(150, 7, END)
    book = playbook({"guards": {"holdout": {"enabled": True}}})
    applied: dict[str, date] = {}
    fired: dict[tuple[str, str], int] = defaultdict(int)
    by_customer: dict[str, list[tuple[date, str]]] = defaultdict(list)
    suppressed_new: set[str] = set()
    day = END - timedelta(days=364)
    while day <= END:
        ev = evaluate(customers, day, book, history=PlanHistory(dict(applied)), catalogue=catalogue,
                      secret=DEMO_REFERRAL_SECRET, predict=False)
        for a in ev.plan:
            if a.key not in applied:  # the dry run's plan, as a sync would write it that day
                sent = day  # what the cap counts: the day the action was written
                applied[a.key] = sent
                fired[(a.rule, a.step)] += 1
                by_customer[a.customer_id].append((sent, a.rule))
        suppressed_new.update(s.rule for s in ev.suppressed)
        day += timedelta(days=1)
    assert fired[("nps", "detractor")] and fired[("nps", "promoter")], dict(fired)
    assert fired[("referral", "thanks")], dict(fired)
    cap = book.guards.cap
    for cid, sent in by_customer.items():
        assert not is_holdout(cid, book.guards.holdout), f"{cid} is held out but got {sent}"
        days = sorted(when for when, rule in sent if rule not in cap.exempt_rules)
        for i, first in enumerate(days):  # never more than max_touches in any period_days window
            window = [d for d in days[i:] if (d - first).days < cap.period_days]
            assert len(window) <= cap.max_touches, f"{cid}: {window}"
    held = [c for c in customers if c.purchases and is_holdout(c.id, book.guards.holdout)]
    assert held, "the demo shop has held-out customers"
    assert {"nps", "referral"} & suppressed_new, "the new rules' actions meet the guards too"
