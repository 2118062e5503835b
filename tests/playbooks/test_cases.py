"""Playbook cases as data: each tests/playbooks/cases/*.toml is history + today + playbook -> plan.

A case file holds `today`, `[playbook]` overrides (merged over the bundled Russian playbook with
hold-out and quiet days off, see pb_builders.TEST_BASE), `[[customers]]` with their
`[[customers.purchases]]`, optional `[history]` (key = applied date),
optional `[[catalogue]]` products (id, name, category, price, cycle_days, term_days), and `[expect]`:
`plan` (exact keys in plan order), `includes` / `excludes` (keys), `suppressed` (key = reason),
`[expect.actions."<key>"]` (action fields; `products` compares payload["products"]),
`[expect.customers.<id>]` (CustomerReport fields) and `[expect.metrics]`; `secret` is the
referral secret of the settings.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pb_builders import catalogue, customer, d, playbook

from playbooks import PlanHistory, evaluate

CASES = sorted((Path(__file__).parent / "cases").glob("*.toml"))


def load_case(path: Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = load_case(path)
    book = playbook(case.get("playbook", {}), lang=case.get("lang", "ru"))
    customers = [customer(c) for c in case.get("customers", [])]
    history = PlanHistory({k: d(v) for k, v in case.get("history", {}).items()})
    products = catalogue(case.get("catalogue"))
    ev = evaluate(customers, d(case["today"]), book, history=history, catalogue=products,
                  secret=case.get("secret", ""))
    expect = case.get("expect", {})
    keys = [a.key for a in ev.plan]
    if "plan" in expect:
        assert keys == expect["plan"], case.get("description", "")
    for key in expect.get("includes", []):
        assert key in keys, f"{key} missing from {keys}"
    for key in expect.get("excludes", []):
        assert key not in keys, f"{key} should not be planned"
    if "suppressed" in expect:
        assert {s.key: s.reason for s in ev.suppressed} == expect["suppressed"]
    by_key = {a.key: a for a in ev.plan}
    for key, fields in expect.get("actions", {}).items():
        action = by_key[key]
        for name, want in fields.items():
            if name == "products":
                got = action.payload.get("products")
            elif name in ("template", "shifted_from", "no_channel", "send_by", "cycle_source"):
                got = action.payload.get(name)
            else:
                got = getattr(action, name)
                got = got.isoformat() if hasattr(got, "isoformat") else str(got) if hasattr(got, "value") else got
            assert got == want, f"{key}.{name}: {got!r} != {want!r}"
    reports = {r.customer_id: r.to_json() for r in ev.customers}
    for cid, fields in expect.get("customers", {}).items():
        for name, want in fields.items():
            assert reports[cid][name] == want, f"customer {cid}.{name}: {reports[cid][name]!r} != {want!r}"
    for name, want in expect.get("metrics", {}).items():
        assert ev.metrics[name] == pytest.approx(want), f"metric {name}: {ev.metrics[name]!r} != {want!r}"
    for name, want in expect.get("segments", {}).items():
        assert ev.segments.get(name, 0) == want, f"segment {name}"
