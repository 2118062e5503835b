"""List methods: 50 per page, total/next, start=-1, filters, order, select, product rows."""

from __future__ import annotations

from datetime import UTC, datetime

from bx_support import ok, rest

from emulators.bitrix import CYCLE_PROPERTY_ID, OPT_OUT_FIELD


def test_pages_of_50_with_total_and_next(shared):
    n = len(shared.store.deals)
    first = ok(shared, "crm.deal.list", {"select": ["ID"]})
    assert len(first["result"]) == 50 and first["total"] == n and first["next"] == 50
    last_start = (n - 1) // 50 * 50
    last = ok(shared, "crm.deal.list", {"select": ["ID"], "start": last_start})
    assert len(last["result"]) == n - last_start and "next" not in last and last["total"] == n
    ids = [int(r["ID"]) for r in first["result"]]
    assert ids == sorted(ids)


def test_start_minus_one_skips_the_count(shared):
    """Doc: settings/performance/huge-data.md - total 0, no next; pages by >ID."""
    seen, last = [], 0
    while True:
        page = ok(shared, "crm.deal.list", {"order": {"ID": "ASC"}, "filter": {">ID": last},
                                            "select": ["ID"], "start": -1})
        assert page["total"] == 0 and "next" not in page
        seen += [int(r["ID"]) for r in page["result"]]
        if len(page["result"]) < 50:
            break
        last = seen[-1]
    assert seen == sorted(shared.store.deals.rows)


def test_numbers_are_strings_and_won_deals_filter(shared):
    won = ok(shared, "crm.deal.list", {"filter": {"STAGE_SEMANTIC_ID": "S"}, "select": ["*"]})
    assert won["total"] == len(shared.shop.won_deals())
    deal = won["result"][0]
    assert isinstance(deal["ID"], str) and deal["OPPORTUNITY"].count(".") == 1
    assert deal["CLOSED"] == "Y" and deal["STAGE_ID"] in ("WON", "C1:WON")
    assert deal["DATE_MODIFY"].endswith("+03:00") and deal["CLOSEDATE"].endswith("T03:00:00+03:00")  # Doc: crm-deal-get.md (date: UTC midnight)
    assert "PHONE" not in deal and not any(k.startswith("UF_") for k in deal)


def test_filter_prefixes(shared):
    def ids(flt, **extra):
        body = {"filter": flt, "select": ["ID"], **extra}
        return [int(r["ID"]) for r in ok(shared, "crm.deal.list", body)["result"]]

    assert ids({">=ID": 5, "<ID": 8}) == [5, 6, 7]
    assert ids({"@ID": [3, 9, 4]}) == [3, 4, 9]
    assert ids({"ID": [3, 9]}) == [3, 9]
    assert 3 not in ids({"!ID": 3, "<=ID": 5}) and ids({"!@ID": [1, 2], "<=ID": 4}) == [3, 4]
    deals = shared.store.deals.rows.values()
    cut = sorted(d.modified for d in deals)[len(deals) // 2]
    iso_cut = datetime.fromtimestamp(cut, UTC).isoformat()
    expected = sum(1 for d in deals if d.modified > cut)
    assert ok(shared, "crm.deal.list", {"filter": {">DATE_MODIFY": iso_cut}})["total"] == expected
    day = datetime.fromtimestamp(cut).date().isoformat()
    assert ok(shared, "crm.deal.list", {"filter": {">=CLOSEDATE": day}})["total"] > 0
    assert ok(shared, "crm.deal.list", {"filter": {"CATEGORY_ID": 1}})["total"] == sum(
        1 for d in deals if d.category_id == 1)
    assert ok(shared, "crm.deal.list", {"filter": {"%TITLE": "заказ #1"}})["total"] > 0


def test_order_by_any_column(shared):
    rows = ok(shared, "crm.deal.list", {"order": {"OPPORTUNITY": "DESC"}, "select": ["ID", "OPPORTUNITY"]})["result"]
    amounts = [float(r["OPPORTUNITY"]) for r in rows]
    assert amounts == sorted(amounts, reverse=True)
    assert amounts[0] == max(d.opportunity for d in shared.store.deals.rows.values())


def test_select_rules_and_multifields(shared):
    plain = ok(shared, "crm.contact.list", {"filter": {"ID": 1}})["result"][0]
    assert OPT_OUT_FIELD in plain and "PHONE" not in plain and "EMAIL" not in plain
    star = ok(shared, "crm.contact.list", {"filter": {"ID": 1}, "select": ["*"]})["result"][0]
    assert OPT_OUT_FIELD not in star and "NAME" in star
    with_channels = [c for c in shared.store.contacts.rows.values() if (c.multi or {}).get("PHONE")]
    cid = with_channels[0].id
    named = ok(shared, "crm.contact.list", {"filter": {"ID": cid}, "select": ["ID", "PHONE", "UF_*"]})["result"][0]
    assert named["PHONE"][0]["TYPE_ID"] == "PHONE" and named[OPT_OUT_FIELD] in ("Y", "N")
    assert set(named) == {"ID", "PHONE", OPT_OUT_FIELD}
    opted = ok(shared, "crm.contact.list", {"filter": {OPT_OUT_FIELD: "Y"}, "select": ["ID"]})["total"]
    assert opted == sum(1 for c in shared.store.contacts.rows.values() if c.uf.get(OPT_OUT_FIELD) == "Y")


def test_item_productrow_list_takes_many_owners(shared):
    owners = list(range(1, 41))
    expected = sorted(r.id for d in owners for r in shared.store.rows_of(d))
    got, start = [], 0
    while start is not None:
        page = ok(shared, "crm.item.productrow.list",
                  {"filter": {"=ownerType": "D", "=ownerId": owners}, "start": start})
        assert page["total"] == len(expected)
        got += page["result"]["productRows"]
        start = page.get("next")
    assert [r["id"] for r in got] == expected
    row = got[0]
    assert isinstance(row["id"], int) and row["ownerType"] == "D" and isinstance(row["price"], int | float)
    r = rest(shared, "crm.item.productrow.list", {"filter": {"=ownerId": 1}})
    assert r.status_code == 400 and r.json()["error"] == "REQUIRED_ARG_MISSING"


def test_legacy_product_rows(shared):
    deal = next(d for d in shared.store.deals.rows.values() if shared.store.rows_of(d.id))
    rows = ok(shared, "crm.deal.productrows.get", {"id": deal.id})["result"]
    assert rows and rows[0]["OWNER_ID"] == str(deal.id) and isinstance(rows[0]["PRODUCT_ID"], int)
    listed = ok(shared, "crm.productrow.list", {"filter": {"OWNER_TYPE": "D", "OWNER_ID": deal.id}})
    assert [r["ID"] for r in listed["result"]] == [r["ID"] for r in rows]
    assert rest(shared, "crm.productrow.list", {"filter": {"OWNER_TYPE": "D"}}).status_code == 400


def test_products_sections_cycles(shared):
    products = ok(shared, "crm.product.list", {"select": ["ID", "NAME", "PRICE", "SECTION_ID", "PROPERTY_*"]})
    assert products["total"] == len(shared.shop.products)
    key = f"PROPERTY_{CYCLE_PROPERTY_ID}"
    by_id = {int(p["ID"]): p for p in products["result"]}
    for p in shared.shop.products:
        value = by_id[p.id][key]
        assert (value is None) if p.cycle_days is None else value["value"] == str(p.cycle_days)
    sections = {s["ID"]: s["NAME"] for s in ok(shared, "crm.productsection.list")["result"]}
    assert sections[by_id[1]["SECTION_ID"]] == shared.shop.product(1).category
    props = ok(shared, "crm.product.property.list")["result"]
    assert props[0]["ID"] == str(CYCLE_PROPERTY_ID) and props[0]["CODE"] == "RS_CYCLE_DAYS"
    assert key not in ok(shared, "crm.product.list", {"select": ["*"]})["result"][0]


def test_pipelines_stages_users(shared):
    cats = ok(shared, "crm.category.list", {"entityTypeId": 2})["result"]["categories"]
    assert {c["id"] for c in cats} == {0, 1}
    stages = ok(shared, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}})["result"]
    assert {s["STATUS_ID"]: s["SEMANTICS"] for s in stages}["C1:WON"] == "S"
    users = ok(shared, "user.get", {"FILTER": {"ACTIVE": True}})["result"]
    assert len(users) == sum(m.active for m in shared.shop.managers) and all(u["ACTIVE"] is True for u in users)
    assert ok(shared, "user.get", {"ID": 2})["result"][0]["ID"] == "2"
    items = ok(shared, "crm.deal.contact.items.get", {"id": 1})["result"]
    assert items[0]["IS_PRIMARY"] == "Y" and isinstance(items[0]["CONTACT_ID"], int)
