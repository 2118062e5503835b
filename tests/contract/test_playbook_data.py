"""The CRM data the playbook's second edition reads, pulled over HTTP from every CRM: when a contact was
created (welcome), a purchase bought on a promo (promo), and a product's term (renewal)."""

from __future__ import annotations

from emulators.shop_extras import PROSPECT_DAYS


def test_creation_day_promo_and_term_come_through_every_crm(shared_crm):
    crm = shared_crm
    seen, _used = crm.pull()
    shop = crm.emulator.shop
    terms = {str(p.id): p.term_days for p in shop.products}
    assert any(terms.values()), "the demo catalogue holds term products"
    assert {pid: seen.products[pid].term_days for pid in terms} == terms
    on_promo = {str(d.id) for d in shop.won_deals() if d.promo}
    assert on_promo, "the demo shop sells on a promo"
    read = {pid for pid, p in seen.purchases.items() if p.promo or any(i.discount > 0 for i in p.items)}
    assert read == on_promo, "a deal won on a promo reads as one (a row discount or the promo field), no other"
    _buyers, prospects = crm.prospects()
    fresh = {cid for cid in prospects if (crm.today - seen.customers[cid].created).days <= PROSPECT_DAYS}
    assert len(fresh) == sum(1 for c in shop.customers if c.rhythm == "prospect") > 0
    assert all(c.created is not None and c.created <= crm.today for c in seen.customers.values())


def test_the_snapshot_keeps_what_the_new_rules_read(crm, tmp_path):
    from connector.state import State

    state = State(tmp_path / "s.db")
    crm.sync(state)
    kept = {p.id: p for c in state.customers(crm.account) for p in c.purchases}
    on_promo = {str(d.id) for d in crm.emulator.shop.won_deals() if d.promo}
    assert {pid for pid, p in kept.items() if p.promo or any(i.discount > 0 for i in p.items)} == on_promo
    assert any(p.term_days for p in state.products(crm.account).values())
    assert all(c.created is not None for c in state.customers(crm.account))
