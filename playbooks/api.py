"""The playbook layer's contract: the values evaluate() (playbooks.engine) takes and returns.

`evaluate` is pure: the same customers, `today`, playbook and history give the same plan
with the same keys. The history of what was already applied comes in as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from connector.model import Action


@dataclass(frozen=True)
class PlanHistory:
    """What earlier runs applied: action key -> the date it was written to the CRM.

    Chains use it (step 2 fires 7 days after step 1 was actually sent); guards use it for
    frequency caps. Empty for a first run or an analyst's CSV.
    """

    applied: Mapping[str, date] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)  # one per customer: no per-instance __dict__
class CustomerReport:
    """One customer's segmentation, as printed by `analyze` and `sync --dry-run` (design.md)."""

    customer_id: str
    purchases: int
    first_purchase: date | None
    last_purchase: date | None
    recency_days: int | None
    frequency: int
    monetary: float
    rfm: str
    lifecycle: str
    value: str
    trend: str
    tier: str
    segment: str
    holdout: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "customer_id": self.customer_id,
            "purchases": self.purchases,
            "first_purchase": self.first_purchase.isoformat() if self.first_purchase else None,
            "last_purchase": self.last_purchase.isoformat() if self.last_purchase else None,
            "recency_days": self.recency_days,
            "frequency": self.frequency,
            "monetary": round(self.monetary, 2),
            "rfm": self.rfm,
            "lifecycle": self.lifecycle,
            "value": self.value,
            "trend": self.trend,
            "tier": self.tier,
            "segment": self.segment,
            "holdout": self.holdout,
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Suppressed:
    """An action a guard held back, and why (opt-out, hold-out, cap, quiet day, no channel)."""

    key: str
    customer_id: str
    rule: str
    reason: str


@dataclass
class Evaluation:
    as_of: date
    customers: list[CustomerReport]
    plan: list[Action]
    segments: dict[str, int]
    metrics: dict[str, object]
    suppressed: list[Suppressed] = field(default_factory=list)
    # the fitted lifetime model (design.md `"model"`); None when the history is too short,
    # and then metrics["model_note"] says why
    model: dict | None = None

    def to_json(self) -> dict:
        """The `analyze --format json` object of design.md (without the plan)."""
        out = {
            "as_of": self.as_of.isoformat(),
            "customers": [c.to_json() for c in self.customers],
            "segments": dict(self.segments),
            "metrics": dict(self.metrics),
        }
        if self.model is not None:
            out["model"] = self.model
        return out
