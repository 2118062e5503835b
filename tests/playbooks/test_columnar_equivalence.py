"""One answer: the columnar evaluation (playbooks.columnar) against the reference engine.

On every playbook case, on both emulator shops (pulled over HTTP) and on a CSV, the customers'
objects, the segment counts, the metrics (with the plan's counts) and the lifetime model must be
the same to the last digit - compared as JSON text, so 0 against 0.0 counts as a difference.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import numpy as np
import pytest
from pb_builders import catalogue, customer, d, merge, playbook
from test_cases import CASES, load_case

from connector.model import Product
from connector.state import State
from connector.sync import run_sync
from connector.transactions_csv import read_transactions
from playbooks import PlanHistory, evaluate, load_playbook
from playbooks.columnar import reports
from playbooks.columnar_json import report_texts
from playbooks.columnar_plan import evaluate_columns


def assert_same(customers, today, book, **kw):
    ref = evaluate(customers, today, book, **kw)
    s, segments, metrics = evaluate_columns(customers, today, book, **kw)
    want = [c.to_json() for c in ref.customers]
    got = list(reports(s))
    assert len(got) == len(want)
    for g, w, text in zip(got, want, report_texts(s), strict=True):
        assert json.dumps(g, ensure_ascii=False) == json.dumps(w, ensure_ascii=False) == text
    assert segments == ref.segments
    assert json.dumps(metrics) == json.dumps(ref.metrics)
    assert json.dumps(s.model) == json.dumps(ref.model)
    return ref


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_every_playbook_case_gets_the_reference_answer(path):
    case = load_case(path)
    book = playbook(case.get("playbook", {}), lang=case.get("lang", "ru"))
    customers = [customer(c) for c in case.get("customers", [])]
    history = PlanHistory({k: d(v) for k, v in case.get("history", {}).items()})
    products = catalogue(case.get("catalogue"))
    assert_same(customers, d(case["today"]), book, history=history, catalogue=products,
                secret=case.get("secret", ""))


VARIANTS = {  # segmentations the bundled playbook does not use, over the same shops
    "default": {},
    "fixed_edges_rhythm_spend_tiers": {
        "segments": {"rfm": {"method": "fixed"}, "value": {"method": "fixed", "metrics": ["monetary", "aov"]},
                     "lifecycle": {"relative_to_rhythm": True},
                     "tiers": {"by": "spend", "tiers": [{"name": "bronze", "min_spend": 0, "cashback_percent": 1},
                                                        {"name": "silver", "min_spend": 15000, "cashback_percent": 2.5},
                                                        {"name": "gold", "min_spend": 50000.5,
                                                         "cashback_percent": 4.25}]}},
        "bonuses": {"bonus_expiry_days": 200, "max_pay_with_bonus_percent": 30}},
    "aov_value_no_holdout": {"segments": {"value": {"metrics": ["aov"], "vip_share": 0.05, "middle_share": 0.5}},
                             "guards": {"holdout": {"enabled": False}}},
}
SHOP_DAY = date(2026, 6, 15)


def _pulled(crm: str, tmp_path):
    """The emulator shop as a dry-run sync leaves it in the snapshot: customers, catalogue, prospects."""
    if crm == "bitrix":
        from connector.bitrix import BitrixAdapter
        from emulators.bitrix import BitrixEmulator

        emu = BitrixEmulator(customers=300, seed=42, today=SHOP_DAY)
        make = lambda: BitrixAdapter(emu.webhook_url)  # noqa: E731
    else:
        from connector.amocrm import AmoAdapter
        from emulators.amocrm import AmoEmulator

        emu = AmoEmulator(customers=300, seed=42, today=SHOP_DAY)
        make = lambda: AmoAdapter(emu.base_url, access_token=emu.access_token)  # noqa: E731
    state = State(tmp_path / "s.db")
    with emu:
        adapter = make()
        try:
            run_sync(adapter, state, load_playbook(), today=SHOP_DAY, dry_run=True)
            account = adapter.account
        finally:
            adapter.close()
    return (list(state.customers(account, lean=True)), list(state.products(account).values()),
            state.prospect_count(account))


@pytest.mark.parametrize("crm", ["bitrix", "amocrm"])
def test_both_emulator_shops_get_the_reference_answer(crm, tmp_path):
    customers, catalogue, prospects = _pulled(crm, tmp_path)
    assert len(customers) > 250
    for name, over in VARIANTS.items():
        book = load_playbook(overrides=over) if over else load_playbook()
        for today in (SHOP_DAY, SHOP_DAY + timedelta(days=45)):
            ref = assert_same(customers, today, book, catalogue=catalogue, prospects=prospects)
            assert ref.metrics["planned"] > 0 and ref.model is not None, name


def _write_csv(path, rows: int, seed: int) -> None:
    """Orders of 1-3 rows, rows without an order (same-day repeats), refunds, a second currency."""
    rng = random.Random(seed)
    start = date(2023, 7, 1)
    lines = ["customer_id,date,amount,product,quantity,order_id,currency"]
    for _ in range(rows):
        cid = f"C{rng.randrange(rows // 8):05d}"
        day = start + timedelta(days=rng.randrange(1100))
        amount = round(rng.uniform(-300, 4000) if rng.random() < 0.05 else rng.uniform(50, 4000), 2)
        order = f"{cid}-{rng.randrange(4)}" if rng.random() < 0.5 else ""
        currency = "USD" if rng.random() < 0.02 else ""
        lines.append(f"{cid},{day.isoformat()},{amount},P{rng.randrange(40)},{rng.choice((1, 1, 2))},{order},{currency}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("piece", [1 << 20, 333])  # per-customer figures from one piece of purchases, or many
def test_a_csv_gets_the_reference_answer(tmp_path, piece, monkeypatch):
    from playbooks import columns

    monkeypatch.setattr(columns, "PURCHASES_AT_ONCE", piece)
    path = tmp_path / "t.csv"
    _write_csv(path, 6000, 5)
    customers = read_transactions(path)
    for over in ({}, {"rates": {"USD": 90.5}}, merge(VARIANTS["fixed_edges_rhythm_spend_tiers"], {})):
        book = load_playbook(overrides=over) if over else load_playbook()
        assert_same(customers, date(2026, 7, 1), book)
        assert_same(customers, date(2025, 1, 1), book)


def _dressed(customers):
    """The CSV's customers with what the later rules read: birthdays, creation days, answers (NPS),
    promo codes, row discounts and categories (every third customer or purchase, by index)."""
    from dataclasses import replace

    out = []
    for i, c in enumerate(customers):
        bought = []
        for k, p in enumerate(c.purchases):
            items = tuple(replace(it, category=f"K{(i + k) % 4}", discount=5.0 if (i + k) % 3 == 0 else 0.0)
                          for it in p.items)
            bought.append(replace(p, items=items, nps=(i * 7 + k) % 11 if (i + k) % 2 else None,
                                  promo="SALE" if (i + k) % 4 == 1 else ""))
        out.append(replace(c, purchases=tuple(bought),
                           birthday=date(1980 + i % 20, 1 + i % 12, 1 + i % 28) if i % 3 else None,
                           created=c.purchases[0].date - timedelta(days=i % 9) if c.purchases else None))
    # contacts whose every purchase was refunded: customers with no counted purchase, for the welcome series
    out += [replace(c, id=f"Z{i:03d}", created=date(2026, 7, 1) + timedelta(days=9 * i),
                    purchases=tuple(replace(p, amount=-abs(p.amount) or -1.0, customer_id=f"Z{i:03d}")
                                    for p in c.purchases))
            for i, c in enumerate(out[:40])]
    return out


LATER_RULES = {  # the rules' parts the bundled playbook leaves commented out, over the CSV's products
    "rules": {
        "upsell": {"ladders": [{"name": "p", "products": [f"P{k}" for k in range(0, 40, 4)], "title": "t"}]},
        "seasonal": {"offers": [{"name": "spring", "if_categories": ["K1"], "start": "03-20", "end": "04-20",
                                 "title": "t"},
                                {"name": "winter", "if_products": ["P3", "P7"], "start": "12-20", "end": "01-10",
                                 "title": "t"}]},
        "renewal": {"products": {"P5": 90, "P6": 400}, "categories": {"K2": 30}},
        "promo": {"min_share": 0.3, "sales": [{"name": "bf", "date": "11-27", "title": "t"},
                                              {"name": "spring", "date": "2027-04-01", "title": "t"}]},
    },
}


def test_every_rule_is_asked_about_every_customer_it_acts_on(tmp_path):
    """Rule.may_fire (who a rule could act on, from columns) holds every customer the rule's
    plan() gives an action, on every day of a sweep across the firing windows - every rule of the
    registry, each acting at least once - and spares analyze the facts of customers no rule is due
    for: each rule leaves some customer out on most days."""
    from playbooks import bonus
    from playbooks.columnar import segment
    from playbooks.columnar_plan import DueColumns
    from playbooks.columns import purchase_columns
    from playbooks.engine import _RULES, build_facts
    from playbooks.facts import ShopFacts

    path = tmp_path / "t.csv"
    _write_csv(path, 3000, 11)
    customers = _dressed(read_transactions(path))
    products = [Product(id=f"P{k}", name=f"P{k}", price=100.0 + k * 20, term_days=180 if k == 9 else None,
                        cycle_days=25 if k % 5 == 0 else None)
                for k in range(40)]
    book = load_playbook(overrides=LATER_RULES)
    acted: dict[str, int] = {}
    spared: dict[str, int] = {}
    days = [date(2026, 7, 1) + timedelta(days=k) for k in range(0, 380, 23)]
    for today in days + [date(2026, 12, 28), date(2026, 11, 25), date(2027, 3, 30), date(2026, 6, 12)]:
        facts = build_facts(customers, today, book, catalogue={p.id: p for p in products}, secret="s3cret")
        credits = bonus.extra_credits(facts, today, book)
        people = [f.customer for f in facts]  # in id order, as the columns
        cols = purchase_columns(people, today, book.currency, book.rates)
        s = segment(cols, today, book)
        shop = facts[0].shop if facts else ShopFacts()
        for start, day in ((cols.start, cols.day), (None, None)):  # the columns, and each customer's purchases
            due = DueColumns(today=today, n=s.fig.n, recency=s.fig.recency, lost_after=s.lost_after,
                             history=np.zeros(len(people), dtype=bool), customers=people, shop=shop,
                             start=start, day=day, bonus_days=book.bonuses.bonus_expiry_days,
                             bonus_credits=credits)
            for kind, rule in _RULES.items():
                cfg = book.rule(kind)
                if cfg is None:
                    continue
                mask = rule.may_fire(due, cfg)
                spared[kind] = spared.get(kind, 0) + (mask is not None and not mask.all())
                for i, f in enumerate(facts):
                    if any(True for _ in rule.plan(f, today, cfg)):
                        acted[kind] = acted.get(kind, 0) + 1
                        assert mask is None or mask[i], (kind, today, f.customer.id)
    assert set(acted) == set(_RULES), acted
    sweeps = 2 * (len(days) + 4)
    assert {kind for kind, n in spared.items() if n < sweeps // 2} == set(), spared


@pytest.mark.parametrize("seed", [5, 6])
def test_the_csv_read_as_columns_gets_the_reference_answer(tmp_path, seed, monkeypatch):
    """analyze's path: the CSV's purchases made in bulk (connector.transactions_columns), customers'
    objects only for the plan, against the reference engine on read_transactions(); the JSON texts
    made in blocks of 97 customers for one seed (the pieces of a block are made at once)."""
    from connector.transactions_columns import read_transaction_table
    from playbooks import columnar_json

    if seed == 6:  # and the per-customer figures made from pieces of ~500 purchases
        from playbooks import columns

        monkeypatch.setattr(columnar_json, "BLOCK", 97)
        monkeypatch.setattr(columns, "PURCHASES_AT_ONCE", 500)
    from playbooks.columnar_plan import evaluate_purchases
    from playbooks.columns import purchase_columns

    path = tmp_path / "t.csv"
    _write_csv(path, 6000, seed)
    customers = read_transactions(path)
    table, summary = read_transaction_table(path)
    assert summary.purchases == sum(len(c.purchases) for c in customers)
    assert table.last_day() == max(c.purchases[-1].date for c in customers if c.purchases)
    assert list(table.customers) == customers  # made from the arrays or by the reader: the same objects
    spend = {"metrics": {"spend": [{"month": "2023-09", "amount": 5000.0}, {"month": "2024-11", "amount": 120.5},
                                   {"month": "2026-06", "amount": 700.0}]}}  # cac from the first purchases' months
    doubtful = {"rules": {"reactivation": {"rhythm_factor": 1.5}}, "guards": {"no_channel": {"mode": "drop"}},
                "metrics": {"margin": 0.3}}  # the reactivation not counted from the columns alone
    for over in ({}, {"rates": {"USD": 90.5}}, spend, doubtful):
        book = load_playbook(overrides=over) if over else load_playbook()
        for today in (date(2026, 7, 1), date(2025, 1, 1)):
            paid = book.bonuses.paid_field if book.bonuses_on else None
            want = purchase_columns(customers, today, book.currency, book.rates, paid_field=paid)
            got = table.columns(today, book.currency, book.rates, paid_field=paid)
            assert got.ids == want.ids
            for name in ("start", "day", "amount") + (("paid",) if paid else ()):
                assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name
            ref = evaluate(customers, today, book)
            s, segments, metrics = evaluate_purchases(got, table.customers, today, book, with_items=table.with_items,
                                                      birthdays=False, scored=False, bare=True)
            assert [json.dumps(r) for r in reports(s)] == [json.dumps(c.to_json()) for c in ref.customers]
            assert list(report_texts(s)) == [json.dumps(c.to_json(), ensure_ascii=False) for c in ref.customers]
            assert segments == ref.segments
            assert json.dumps(metrics) == json.dumps(ref.metrics)


def test_a_csv_with_a_header_only_reads_as_no_purchases(tmp_path):
    from connector.transactions_columns import read_transaction_table

    path = tmp_path / "t.csv"
    path.write_text("customer_id,date,amount\n", encoding="utf-8")
    table, summary = read_transaction_table(path)
    cols = table.columns(date(2026, 7, 1), "RUB", {})
    assert (table.last_day(), summary.customers, summary.purchases, cols.ids, len(cols.day)) == (None, 0, 0, [], 0)


@pytest.mark.parametrize("orders", [True, False])
def test_same_day_purchases_read_as_columns_keep_the_readers_ids_and_order(tmp_path, orders):
    """Rows without an order on one day are purchases "day", "day#2" ... "day#12" in the reader's order
    (amount, product, quantity, then the file's), beside orders of that day - one named like the day
    itself - or alone; the columns order them by id ("day#10" before "day#2"), as purchase_columns does."""
    from connector.transactions_columns import read_transaction_table
    from playbooks.columns import purchase_columns

    lines = ["customer_id,date,amount,product,quantity,order_id,category"]
    for k in range(12):  # equal amount, product and quantity, other categories: the file's order decides
        lines.append(f"A,2026-03-01,{100 + (k % 2) * 10},{'PQ'[k % 2 if k < 8 else 0]},1,,K{(7 * k) % 12}")
    lines += ["A,2026-03-01,55,P,1,2026-03-01,", "A,2026-03-01,70,Q,1,Z9,", "A,2026-03-01,20,P,1,Z9,",
              "A,2026-02-20,300,P,1,,", "B,2026-03-01,10,P,1,,", "B,2026-03-01,10,P,1,,", "B,2026-02-01,5,,,,"]
    if not orders:
        lines = lines[:1] + [line for line in lines[1:] if line.split(",")[5] == ""]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    customers = read_transactions(path)
    assert "2026-03-01#12" in {p.id for p in customers[0].purchases}
    table, _ = read_transaction_table(path)
    assert list(table.customers) == customers
    today = date(2026, 3, 2)
    want, got = purchase_columns(customers, today, "RUB", {}), table.columns(today, "RUB", {})
    for name in ("start", "day", "amount"):
        assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name


def test_figures_rounded_as_a_column_print_as_round_prints_them():
    """analyze's JSON rounds money to 2 places and probabilities to 4 a column at a time: the text of
    each number is repr(round(v, digits)), also on halves, ties, tiny and huge values."""
    from playbooks.columnar_json import rounded

    rng = np.random.default_rng(11)
    values = np.concatenate((rng.uniform(0, 5000, 20000), rng.integers(0, 10**6, 20000) / 200,
                             rng.integers(0, 10**7, 20000) / 20000, np.exp(rng.uniform(-40, 60, 5000)),
                             -rng.uniform(0, 1e-3, 1000), [0.0, -0.0, 2.675, 1.005, 0.125, 0.00005, 1e300,
                                                           float("nan"), float("inf"), 2.0**60 + 0.5]))
    for digits in (2, 4):
        assert rounded(values, digits) == [repr(round(v, digits)) for v in values.tolist()]


@pytest.mark.parametrize("block", [65_536, 7_000])  # ids hashed in blocks: one, or several (a line break in one)
@pytest.mark.parametrize("percent", [10.0, 0.0, 33.3333, 99.99999])
def test_the_hold_out_taken_as_a_column_is_each_customers_own(percent, block, monkeypatch):
    """guards.holdout_column (analyze's hold-out of a million customers at once) holds out exactly the
    customers is_holdout holds out, at any share, also right at a bucket's edge."""
    from playbooks import guards
    from playbooks.guards import holdout_bucket, holdout_column, is_holdout
    from playbooks.schema import HoldoutConfig

    monkeypatch.setattr(guards, "HASHED_AT_ONCE", block)

    ids = [f"{k:06d}~{k % 7}" for k in range(30000)] + ["", "клиент", "a:b", "two\nlines", "\r\n"]
    assert holdout_column(ids[:3] + ids[-3:], HoldoutConfig(percent=percent)).tolist() == [
        is_holdout(c, HoldoutConfig(percent=percent)) for c in ids[:3] + ids[-3:]]
    assert holdout_column([], HoldoutConfig(percent=percent)).tolist() == []
    for cfg in (HoldoutConfig(percent=percent), HoldoutConfig(percent=percent, salt="other"),
                HoldoutConfig(enabled=False), HoldoutConfig(percent=holdout_bucket("000123~4", "repeat-sales"))):
        assert holdout_column(ids, cfg).tolist() == [is_holdout(c, cfg) for c in ids]


def test_a_long_column_adds_up_as_python_adds_its_list():
    """columns.python_sum takes a long column a piece at a time and still adds the numbers as one
    sum() over the whole list does (the revenue printed to the last digit)."""
    import numpy as np

    from playbooks.columns import SUM_PIECE, python_sum

    rng = np.random.default_rng(11)
    values = rng.choice([1e-3, 0.1, 12.37, 1e6, 3e15], size=3 * SUM_PIECE + 17) * rng.uniform(0, 1, 3 * SUM_PIECE + 17)
    for column in (values, values[:SUM_PIECE], values[:5], values[:0]):
        assert python_sum(column) == sum(column.tolist())
    assert python_sum(values) != sum(values[:SUM_PIECE].tolist()) + sum(values[SUM_PIECE:].tolist())
