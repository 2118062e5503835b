"""Reading action keys back: which customer and rule an applied key in PlanHistory belongs to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import NamedTuple


class KeyParts(NamedTuple):
    customer_id: str
    rule: str
    anchor: str
    step: str


def parse_key(key: str, rules: Iterable[str]) -> KeyParts | None:
    """Split `v1:<customer>:<rule>:<anchor>:<step>`; the rule name finds the split, since ids may hold ':'."""
    if not key.startswith("v1:"):
        return None
    best = None
    for rule in rules:
        pos = key.find(f":{rule}:", 2)
        if pos > 2 and (best is None or pos < best[0]):
            best = (pos, rule)
    if best is None:
        return None
    pos, rule = best
    rest = key[pos + len(rule) + 2:]
    anchor, _, step = rest.rpartition(":")
    return KeyParts(key[3:pos], rule, anchor, step)


def applied_by_customer(applied: Mapping[str, date], rules: Iterable[str]) -> dict[str, list[tuple[str, str, date]]]:
    """customer_id -> [(key, rule, applied date)] for every parseable key."""
    rules = tuple(rules)
    out: dict[str, list[tuple[str, str, date]]] = defaultdict(list)
    for key, when in applied.items():
        parts = parse_key(key, rules)
        if parts is not None:
            out[parts.customer_id].append((key, parts.rule, when))
    return out
