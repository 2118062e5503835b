"""Money the way a director counts it: NPS, profit per customer, CAC from monthly spend, LTV:CAC,
referrals. One pass over the customers, shared by the reference engine and the columnar path,
so both give the same figures; the definitions are in README.md, "Definitions".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from connector.model import Customer, Purchase
from playbooks.referral import DETRACTOR, PROMOTER, find_referrals, referral_metrics
from playbooks.schema import MetricsConfig, Playbook, parse_month


@dataclass(frozen=True)
class Row:
    """One customer as the money metrics read it: counted purchases (sorted), their amounts in the
    playbook currency (None: no rate), and the named segment."""

    customer: Customer
    purchases: tuple[Purchase, ...]
    amounts: tuple[float | None, ...]
    segment: str


def nps_of(scores: Iterable[int]) -> float | None:
    """% promoters (9-10) - % detractors (0-6) of the answers, one decimal; None without answers."""
    counts = Counter("p" if s >= PROMOTER else "d" if s <= DETRACTOR else "n" for s in scores)
    total = sum(counts.values())
    return round(100.0 * (counts["p"] - counts["d"]) / total, 1) if total else None


def purchase_margin(p: Purchase, cfg: MetricsConfig) -> float:
    """The margin of a purchase: its lines' margins (by product id, else category, else the default)
    weighted by line value; the default for a purchase without priced lines."""
    default = cfg.margin or 0.0
    total = weighted = 0.0
    for item in p.items:
        value = item.price * item.quantity
        if value <= 0:
            continue
        m = cfg.margins.get(item.product_id or "", cfg.margins.get(item.category or "", default))
        total += value
        weighted += value * m
    return weighted / total if total else default


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def director_metrics(rows: Iterable[Row], today: date, playbook: Playbook, *, ltv3: float,
                     cac: float | None = None, secret: str = "") -> dict[str, object]:
    """NPS (overall, per month of the purchase rated, per segment), `ltv_profit` (with a margin),
    `cac` (given, else spend per month / new customers of those months), `ltv_cac` against its
    benchmark, and referrals (with the referral secret)."""
    cfg = playbook.metrics
    scores: list[int] = []
    by_month: dict[str, list[int]] = defaultdict(list)
    by_segment: dict[str, list[int]] = defaultdict(list)
    profit = 0.0
    buyers = 0
    new_by_month: Counter[str] = Counter()
    revenue: dict[str, float] = {}
    people: list[Customer] = []
    for row in rows:
        people.append(row.customer)
        if not row.purchases:
            continue
        buyers += 1
        new_by_month[month_of(row.purchases[0].date)] += 1
        revenue[row.customer.id] = sum(a for a in row.amounts if a is not None)
        for p, a in zip(row.purchases, row.amounts, strict=True):
            if p.nps is not None:
                scores.append(p.nps)
                by_month[month_of(p.date)].append(p.nps)
                by_segment[row.segment].append(p.nps)
            if cfg.margin is not None and a is not None:
                profit += a * purchase_margin(p, cfg)
    out: dict[str, object] = {
        "nps": nps_of(scores),
        "nps_answers": len(scores),
        "nps_by_month": {m: nps_of(v) for m, v in sorted(by_month.items())},
        "nps_by_segment": {s: nps_of(v) for s, v in sorted(by_segment.items())},
    }
    if cfg.margin is not None:
        out["ltv_profit"] = round(profit / buyers, 2) if buyers else 0.0
    out.update(cac_metrics(cfg, new_by_month, today, ltv3=ltv3, cac=cac))
    if secret:
        out.update(referral_metrics(find_referrals(people, secret, today), revenue))
    return out


def unscored_director_metrics(new_by_month: Mapping[str, int], today: date, playbook: Playbook, *, ltv3: float,
                              cac: float | None = None) -> dict[str, object]:
    """director_metrics of customers whose purchases carry no NPS answer (a CSV), without a margin or a
    referral secret: what is left needs only how many customers first bought in each month."""
    cfg = playbook.metrics
    assert cfg.margin is None
    out: dict[str, object] = {"nps": None, "nps_answers": 0, "nps_by_month": {}, "nps_by_segment": {}}
    out.update(cac_metrics(cfg, new_by_month, today, ltv3=ltv3, cac=cac))
    return out


def cac_metrics(cfg: MetricsConfig, new_by_month: Mapping[str, int], today: date, *, ltv3: float,
                cac: float | None) -> dict[str, object]:
    """`cac` (given, else the spend's), its months and `ltv_cac` against the benchmark."""
    out: dict[str, object] = {}
    cac_value = cac if cac is not None else cfg.cac
    if cfg.spend:
        by_month_cac = spend_cac(cfg, new_by_month, today)
        out["cac_by_month"] = by_month_cac["months"]
        if cac_value is None:
            cac_value = by_month_cac["cac"]
    if cac_value is not None:
        out["cac"] = round(cac_value, 2)
        ratio = ltv3 / cac_value if cac_value else None  # metrics.ltv_cac
        out["ltv_cac"] = round(ratio, 4) if ratio is not None else None
        out["ltv_cac_benchmark"] = cfg.ltv_cac_benchmark
        out["ltv_cac_healthy"] = ratio is not None and ratio >= cfg.ltv_cac_benchmark
    return out


def spend_cac(cfg: MetricsConfig, new_by_month: Mapping[str, int], today: date) -> dict:
    """Each spend month up to today's: spend / customers whose first purchase fell in it (None
    without any), and the whole: all that spend / all those new customers."""
    months: dict[str, float | None] = {}
    spent = 0.0
    new = 0
    for entry in sorted(cfg.spend, key=lambda e: e.month):
        year, month = parse_month(entry.month)
        if (year, month) > (today.year, today.month):
            continue
        n = new_by_month.get(entry.month, 0)
        months[entry.month] = round(entry.amount / n, 2) if n else None
        spent += entry.amount
        new += n
    return {"months": months, "cac": spent / new if new else None}
