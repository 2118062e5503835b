"""The playbook: segmentation settings, rules and guards, loaded from TOML and fully validated.

A file may start with `extends = "default"` (or `"default.en"`): it is then merged over the
bundled playbook, table by table (arrays replace). Without it the file stands alone and a rule
is active only when its `[rules.<kind>]` table is present.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from connector.errors import PlaybookError
from playbooks.validation import Locator, build, deep_merge, key_lines

BUNDLED = {"default": "default.toml", "default.ru": "default.toml", "default.en": "default.en.toml"}
HERE = Path(__file__).resolve().parent
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _ascending(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


# --- segmentation -------------------------------------------------------------------------


@dataclass(frozen=True)
class RfmSegmentRule:
    """A named segment: scores inside every [lo, hi] range (an integer means exactly it)."""

    name: str = field(default="", metadata={"required": True})
    r: list[int] | int = field(default_factory=lambda: [1, 5], metadata={"min": 1, "max": 5})
    f: list[int] | int = field(default_factory=lambda: [1, 5], metadata={"min": 1, "max": 5})
    m: list[int] | int = field(default_factory=lambda: [1, 5], metadata={"min": 1, "max": 5})

    def check(self):
        for key in ("r", "f", "m"):
            value = getattr(self, key)
            if isinstance(value, list) and (len(value) != 2 or value[0] > value[1]):
                yield key, "expected [low, high] with low <= high", "e.g. [4, 5] or a single score 5"

    def span(self, key: str) -> tuple[int, int]:
        value = getattr(self, key)
        return (value, value) if isinstance(value, int) else (value[0], value[1])


def _default_rfm_segments() -> list[RfmSegmentRule]:
    S = RfmSegmentRule
    return [S("champions", [4, 5], [4, 5], [4, 5]), S("lost_champions", [1, 2], [4, 5], [4, 5]),
            S("loyal", [3, 5], [3, 5], [1, 5]), S("at_risk", [1, 2], [3, 5], [1, 5]),
            S("new", 5, 1, [1, 5]), S("promising", [3, 5], [1, 2], [1, 5]),
            S("hibernating", 2, [1, 2], [1, 5]), S("lost", 1, [1, 2], [1, 5])]


@dataclass(frozen=True)
class RfmConfig:
    method: str = field(default="quantile", metadata={"choices": ["quantile", "fixed"]})
    recency_edges: list[float] = field(default_factory=lambda: [30.0, 90.0, 180.0, 365.0], metadata={"min": 0})
    frequency_edges: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0, 5.0], metadata={"min": 0})
    monetary_edges: list[float] = field(default_factory=lambda: [1000.0, 3000.0, 10000.0, 30000.0],
                                        metadata={"min": 0})
    segments: list[RfmSegmentRule] = field(default_factory=_default_rfm_segments)
    fallback: str = "others"

    def check(self):
        for key in ("recency_edges", "frequency_edges", "monetary_edges"):
            edges = getattr(self, key)
            if len(edges) != 4 or not _ascending(edges):
                yield key, "expected 4 strictly ascending edges", "scores 1-5 need 4 edges, e.g. [30, 90, 180, 365]"


@dataclass(frozen=True)
class LifecycleConfig:
    new_days: int = field(default=90, metadata={"min": 1})
    sleeping_days: int = field(default=90, metadata={"min": 1})
    lost_days: int = field(default=365, metadata={"min": 1})
    relative_to_rhythm: bool = False
    rhythm_min_purchases: int = field(default=3, metadata={"min": 2})
    rhythm_sleeping_factor: float = field(default=2.0, metadata={"min": 1.0, "max": 20.0})
    rhythm_lost_factor: float = field(default=4.0, metadata={"min": 1.0, "max": 50.0})

    def check(self):
        if self.lost_days <= self.sleeping_days:
            yield "lost_days", "must be greater than sleeping_days", f"sleeping_days is {self.sleeping_days}"
        if self.rhythm_lost_factor <= self.rhythm_sleeping_factor:
            yield "rhythm_lost_factor", "must be greater than rhythm_sleeping_factor", ""


@dataclass(frozen=True)
class ValueConfig:
    method: str = field(default="quantile", metadata={"choices": ["quantile", "fixed"]})
    metrics: list[str] = field(default_factory=lambda: ["monetary"], metadata={"choices": ["monetary", "aov"]})
    vip_share: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    middle_share: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    vip_monetary: float = field(default=50000.0, metadata={"min": 0})
    middle_monetary: float = field(default=10000.0, metadata={"min": 0})
    vip_aov: float = field(default=10000.0, metadata={"min": 0})
    middle_aov: float = field(default=3000.0, metadata={"min": 0})

    def check(self):
        if self.vip_share + self.middle_share > 1.0:
            yield "middle_share", "vip_share + middle_share must not exceed 1", ""
        if self.vip_monetary < self.middle_monetary:
            yield "vip_monetary", "must be >= middle_monetary", ""
        if self.vip_aov < self.middle_aov:
            yield "vip_aov", "must be >= middle_aov", ""


@dataclass(frozen=True)
class TrendConfig:
    window_days: int = field(default=180, metadata={"min": 7})
    threshold: float = field(default=0.25, metadata={"min": 0.0, "max": 1.0})
    min_history_days: int = field(default=180, metadata={"min": 0})


@dataclass(frozen=True)
class TierSpec:
    name: str = field(default="", metadata={"required": True})
    min_purchases: int = field(default=0, metadata={"min": 0})
    min_spend: float = field(default=0.0, metadata={"min": 0})
    benefits: str = ""
    label: str = ""  # the name customers read ({tier} in a step's `text`); `name` is the slug
    cashback_percent: float = field(default=0.0, metadata={"min": 0.0, "max": 100.0})  # bonuses per purchase


@dataclass(frozen=True)
class TierConfig:
    by: str = field(default="purchases", metadata={"choices": ["purchases", "spend"]})
    tiers: list[TierSpec] = field(default_factory=lambda: [
        TierSpec("bronze", 1, 0.0), TierSpec("silver", 3, 15000.0), TierSpec("gold", 6, 50000.0)])
    none: str = "none"

    def check(self):
        key = "min_purchases" if self.by == "purchases" else "min_spend"
        values = [getattr(t, key) for t in self.tiers]
        if not _ascending(values):
            yield "tiers", f"tiers must be listed by strictly ascending {key}", "lowest tier first"
        if len({t.name for t in self.tiers}) != len(self.tiers):
            yield "tiers", "tier names must be unique", ""


LIFECYCLE_STAGES = ["prospect", "new", "active", "sleeping", "lost"]


@dataclass(frozen=True)
class ConditionSegment:
    """A named segment defined by conditions; a customer is in it when every condition set holds.

    `bought_categories`: bought one of them, at least `bought_days_ago` days ago;
    `not_bought_categories`: never bought any of them; `min_spend` / `max_spend`: lifetime spend
    in the playbook currency; `min_purchases`; `tiers`, `lifecycles`: one of those.
    """

    name: str = field(default="", metadata={"required": True})
    bought_categories: list[str] = field(default_factory=list)
    bought_days_ago: int = field(default=0, metadata={"min": 0, "max": 36500})
    not_bought_categories: list[str] = field(default_factory=list)
    min_spend: float | None = field(default=None, metadata={"min": 0.0})
    max_spend: float | None = field(default=None, metadata={"min": 0.0})
    min_purchases: int = field(default=0, metadata={"min": 0})
    tiers: list[str] = field(default_factory=list)
    lifecycles: list[str] = field(default_factory=list, metadata={"choices": LIFECYCLE_STAGES})

    def check(self):
        if self.min_spend is not None and self.max_spend is not None and self.max_spend < self.min_spend:
            yield "max_spend", "must be at least min_spend", f"min_spend is {self.min_spend}"
        both = sorted(set(self.bought_categories) & set(self.not_bought_categories))
        if both:
            yield "not_bought_categories", f"{both[0]!r} is also in bought_categories", \
                "a category is either required or excluded"


@dataclass(frozen=True)
class SegmentsConfig:
    rfm: RfmConfig = field(default_factory=RfmConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    trend: TrendConfig = field(default_factory=TrendConfig)
    tiers: TierConfig = field(default_factory=TierConfig)
    conditions: list[ConditionSegment] = field(default_factory=list)

    def check(self):
        tiers = {t.name for t in self.tiers.tiers} | {self.tiers.none}
        names = [c.name for c in self.conditions]
        for i, c in enumerate(self.conditions):
            if names.index(c.name) != i:
                yield f"conditions[{i}].name", f"segment {c.name!r} is defined twice", "name each segment once"
            for j, tier in enumerate(c.tiers):
                if tier not in tiers:
                    yield f"conditions[{i}].tiers[{j}]", f"unknown tier {tier!r}", \
                        f"allowed values: {', '.join(sorted(tiers))}"


@dataclass(frozen=True)
class BonusConfig:
    """The bonus account the tiers' `cashback_percent` fills (playbooks.bonus).

    `bonus_expiry_days`: each accrual burns that many days after its purchase (0: never);
    `max_pay_with_bonus_percent`: at most this share of a purchase is paid with bonuses;
    `paid_field`: the deal (amoCRM lead) field holding the bonuses paid on it - `bonus_paid` is the
    plugin's own (`install` creates it), any other deal field may be named by its code.
    """

    enabled: bool = True
    bonus_expiry_days: int = field(default=0, metadata={"min": 0, "max": 36500})
    max_pay_with_bonus_percent: float = field(default=50.0, metadata={"min": 0.0, "max": 100.0})
    paid_field: str = "bonus_paid"

    def check(self):
        if self.enabled and not self.paid_field.strip():
            yield "paid_field", "empty field name", "name the deal field holding bonuses paid, e.g. \"bonus_paid\""


# --- guards and metrics --------------------------------------------------------------------

CHANNELS = ["email", "sms", "call", "task", "messenger"]


@dataclass(frozen=True)
class CapConfig:
    enabled: bool = True
    max_touches: int = field(default=2, metadata={"min": 0})
    period_days: int = field(default=7, metadata={"min": 1})
    exempt_rules: list[str] = field(default_factory=list)


def parse_quiet_date(text: str) -> tuple[int, int, int] | None:
    """`MM-DD` -> (0, m, d) every year; `YYYY-MM-DD` -> (y, m, d); anything else None."""
    parts = text.split("-")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    if len(nums) == 2:
        nums = [0, *nums]
    if len(nums) != 3:
        return None
    try:
        date(nums[0] or 2000, nums[1], nums[2])
    except ValueError:
        return None
    return nums[0], nums[1], nums[2]



@dataclass(frozen=True)
class QuietConfig:
    weekdays: list[str] = field(default_factory=list, metadata={"choices": list(WEEKDAYS)})
    dates: list[str] = field(default_factory=list)
    mode: str = field(default="shift", metadata={"choices": ["shift", "drop"]})
    channels: list[str] = field(default_factory=lambda: ["email", "sms", "call"], metadata={"choices": CHANNELS})

    def check(self):
        for i, text in enumerate(self.dates):
            if parse_quiet_date(text) is None:
                yield f"dates[{i}]", f"bad date {text!r}", "use MM-DD (every year) or YYYY-MM-DD"
        if len(set(self.weekdays)) == len(WEEKDAYS) and self.mode == "shift":
            yield "weekdays", "every weekday is quiet: nothing could ever be sent", "leave at least one day"


@dataclass(frozen=True)
class OptOutConfig:
    fields: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    truthy: list[str] = field(default_factory=lambda: ["1", "y", "yes", "true", "да", "д"])
    keep: str = field(default="service_tasks", metadata={"choices": ["service_tasks", "none"]})
    # a card field listing the channels this customer refused ("email, sms"); the others stay open
    channels_field: str = "refused_channels"


@dataclass(frozen=True)
class NoChannelConfig:
    mode: str = field(default="task", metadata={"choices": ["task", "drop"]})


@dataclass(frozen=True)
class HoldoutConfig:
    enabled: bool = True
    percent: float = field(default=10.0, metadata={"min": 0.0, "max": 100.0})
    salt: str = "repeat-sales"


@dataclass(frozen=True)
class GuardsConfig:
    cap: CapConfig = field(default_factory=CapConfig)
    quiet: QuietConfig = field(default_factory=QuietConfig)
    opt_out: OptOutConfig = field(default_factory=OptOutConfig)
    no_channel: NoChannelConfig = field(default_factory=NoChannelConfig)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)


@dataclass(frozen=True)
class SpendEntry:
    """Marketing spend of one calendar month (`YYYY-MM`), in the playbook currency."""

    month: str = field(default="", metadata={"required": True})
    amount: float = field(default=0.0, metadata={"min": 0.0, "required": True})

    def check(self):
        if parse_month(self.month) is None:
            yield "month", f"bad month {self.month!r}", "use YYYY-MM, e.g. \"2026-03\""


def parse_month(text: str) -> tuple[int, int] | None:
    """`YYYY-MM` -> (year, month), anything else None."""
    parts = text.split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or not all(p.isdigit() for p in parts):
        return None
    year, month = int(parts[0]), int(parts[1])
    return (year, month) if 1 <= month <= 12 else None


@dataclass(frozen=True)
class MetricsConfig:
    """`margin`: the share of revenue that is profit (0.3 = 30 %), for `ltv_profit`; `margins` refines
    it per product id or category. `spend`: marketing spend per month, for `cac`."""

    cac: float | None = field(default=None, metadata={"min": 0})
    lifespan_years: float = field(default=3.0, metadata={"min": 0.0, "max": 100.0})
    retention_active_days: int = field(default=365, metadata={"min": 1})
    retention_period_days: int = field(default=365, metadata={"min": 1})
    margin: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    margins: dict[str, float] = field(default_factory=dict, metadata={"min": 0.0, "max": 1.0})
    spend: list[SpendEntry] = field(default_factory=list)
    ltv_cac_benchmark: float = field(default=3.0, metadata={"min": 0.0})

    def check(self):
        if self.margins and self.margin is None:
            yield "margin", "`margins` needs the default margin for everything else", \
                "set margin = 0.3 (the share of revenue that is profit) next to margins"
        months = [s.month for s in self.spend]
        for i, month in enumerate(months):
            if months.index(month) != i:
                yield f"spend[{i}].month", f"month {month!r} is listed twice", "one entry per month"


@dataclass(frozen=True)
class WritebackConfig:
    """What sync writes into the CRM besides tasks (used only when `repeat-sales install` ran).

    `deal_pipeline` / `deal_stage`: where repeat deals go, by name or id; "" = the CRM's default
    pipeline and its first open stage. `card_fields`: segment, RFM, lifecycle, tier and predicted
    next purchase on each customer card. `task_context`: tasks carry the customer's history.
    """

    deal_pipeline: str = ""
    deal_stage: str = ""
    card_fields: bool = True
    task_context: bool = True
    email_from: str = ""  # the sender of e-mails ("Shop <shop@example.com>"); "" = the manager's mailbox


# --- the playbook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Playbook:
    """A validated playbook. `rules` maps each active rule kind to its config dataclass."""

    version: int = field(default=1, metadata={"min": 1, "max": 1})
    name: str = ""
    lang: str = field(default="ru", metadata={"choices": ["ru", "en"]})
    extends: str = field(default="", metadata={"choices": ["", *BUNDLED]})
    currency: str = "RUB"
    rates: dict[str, float] = field(default_factory=dict, metadata={"min": 0.0})
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    guards: GuardsConfig = field(default_factory=GuardsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    writeback: WritebackConfig = field(default_factory=WritebackConfig)
    bonuses: BonusConfig = field(default_factory=BonusConfig)
    # the team's words for codes: [names.segments] champions = "Звёзды" (playbooks/words.py)
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def bonuses_on(self) -> bool:
        """A bonus account is kept when [bonuses] is enabled and some tier pays cashback."""
        return self.bonuses.enabled and any(t.cashback_percent > 0 for t in self.segments.tiers.tiers)

    def rule(self, kind: str) -> Any | None:
        """The active config of rule `kind`, or None when it is absent or disabled."""
        cfg = self.rules.get(kind)
        return cfg if cfg is not None and getattr(cfg, "enabled", True) else None

    def rule_summary(self) -> list[tuple[str, int, list[str]]]:
        """Active rules, highest priority first: (kind, priority, names of its steps, dates, offers
        and messages). What `playbook check` lists, so an admin sees what the file will do."""
        out = []
        for kind, cfg in self.rules.items():
            if self.rule(kind) is None:
                continue
            parts: list[str] = []
            for f in dataclasses.fields(cfg):
                value = getattr(cfg, f.name)
                if isinstance(value, list):
                    parts += [item.name for item in value if getattr(item, "name", "")]
                elif dataclasses.is_dataclass(value) and hasattr(value, "title"):
                    parts.append(f.name)  # a message of its own (loyalty welcome, replenishment task)
            out.append((kind, int(getattr(cfg, "priority", 100)), parts))
        return sorted(out, key=lambda row: (row[1], row[0]))

    def inactive_rules(self) -> list[str]:
        """Rule kinds this playbook leaves out or disables."""
        from playbooks.rules import REGISTRY

        return [kind for kind in REGISTRY if self.rule(kind) is None]


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = None
        msg = str(exc)
        import re

        found = re.search(r"line (\d+)", msg)
        if found:
            line = int(found.group(1))
        raise PlaybookError("(file)", f"not valid TOML: {msg}", line=line, source=source,
                            hint="check quotes, brackets and `key = value` syntax") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PlaybookError("(file)", f"playbook file not found: {path}", source=str(path),
                            hint="pass an existing .toml file, or omit it for the bundled default") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError("(file)", f"cannot read playbook: {exc}", source=str(path),
                            hint="the file must be UTF-8 text") from None


def load_playbook(path: str | Path | None = None, *, lang: str = "ru",
                  overrides: dict[str, Any] | None = None) -> Playbook:
    """Load and validate a playbook; None loads the bundled default for `lang`.

    `overrides` (a parsed TOML table, e.g. from a test case) is merged over the result.
    Every fault raises PlaybookError with the key path, the line and the allowed values.
    """
    if lang not in ("ru", "en"):
        raise PlaybookError("lang", f"unknown language {lang!r}", hint="allowed values: ru, en")
    if path is None:
        path = HERE / BUNDLED["default.en" if lang == "en" else "default"]
    path = Path(path)
    text = _read(path)
    data = _parse(text, path.name)
    sources = [(path.name, key_lines(text))]
    base_name = data.get("extends")
    if base_name:
        if base_name not in BUNDLED:
            loc = Locator(sources)
            raise loc.error("extends", f"unknown base playbook {base_name!r}",
                            hint=f"allowed values: {', '.join(BUNDLED)}")
        base_path = HERE / BUNDLED[base_name]
        base_text = _read(base_path)
        base = _parse(base_text, base_path.name)
        data = deep_merge(base, {k: v for k, v in data.items() if k != "extends"})
        sources.append((base_path.name, key_lines(base_text)))
    if overrides:
        data = deep_merge(data, overrides)
    return playbook_from_dict(data, Locator(sources), source=str(path))


def playbook_from_dict(data: dict[str, Any], loc: Locator | None = None, *, source: str = "") -> Playbook:
    """Validate an already parsed playbook table (used by tests and `load_playbook`)."""
    from playbooks.rules import REGISTRY

    loc = loc or Locator([(source, {})])
    rules_data = data.get("rules", {})
    if not isinstance(rules_data, dict):
        raise loc.error("rules", "expected a table of rules", hint=f"known rules: {', '.join(REGISTRY)}")
    rules: dict[str, Any] = {}
    for kind, cfg in rules_data.items():
        if kind not in REGISTRY:
            from playbooks.validation import _closest

            near = _closest(kind, REGISTRY)
            hint = (f"did you mean {near!r}? " if near else "") + f"known rules: {', '.join(REGISTRY)}"
            raise loc.error(f"rules.{kind}", "unknown rule kind", hint=hint)
        rules[kind] = build(REGISTRY[kind].Config, cfg, f"rules.{kind}", loc)
    top = {k: v for k, v in data.items() if k not in ("rules", "source")}
    book = build(Playbook, top, "", loc)
    seen_rules = set(REGISTRY)
    for i, name in enumerate(book.guards.cap.exempt_rules):
        if name not in seen_rules:
            raise loc.error(f"guards.cap.exempt_rules[{i}]", f"unknown rule {name!r}",
                            hint=f"known rules: {', '.join(REGISTRY)}")
    _check_condition_names(book, loc)
    _check_segment_names(book, rules, loc)
    _check_names(book, loc)
    from dataclasses import replace

    return replace(book, rules=rules, source=source)


def known_segment_names(book: Playbook) -> set[str]:
    """Every name a rule's `segments = [...]` may use (bare or with its `lifecycle:`-style prefix)."""
    seg = book.segments
    groups = {
        "lifecycle": ["prospect", "new", "active", "sleeping", "lost"],
        "value": ["base", "middle", "vip"],
        "trend": ["growing", "stable", "fading"],
        "tier": [t.name for t in seg.tiers.tiers] + [seg.tiers.none],
    }
    names = {r.name for r in seg.rfm.segments} | {seg.rfm.fallback, "no_purchases"}
    for prefix, values in groups.items():
        names.update(values)
        names.update(f"{prefix}:{v}" for v in values)
    return names | {c.name for c in seg.conditions}


def _check_condition_names(book: Playbook, loc: Locator) -> None:
    """A condition segment may not take a name the other segmentations already use."""
    conditions = book.segments.conditions
    taken = known_segment_names(dataclasses.replace(book, segments=dataclasses.replace(book.segments,
                                                                                       conditions=[])))
    for i, c in enumerate(conditions):
        if c.name in taken:
            raise loc.error(f"segments.conditions[{i}].name", f"{c.name!r} already names a segment",
                            hint="pick a name of its own, e.g. \"printer_owners\"")


def _check_names(book: Playbook, loc: Locator) -> None:
    """`[names.<group>]` renames only codes the playbook has, to a non-empty name."""
    from playbooks.words import GROUPS, known_codes

    for group, table in book.names.items():
        if group not in GROUPS:
            raise loc.error(f"names.{group}", f"unknown group {group!r}", hint=f"allowed values: {', '.join(GROUPS)}")
        known = known_codes(book, group)
        for code, name in table.items():
            if code not in known:
                raise loc.error(f"names.{group}.{code}", f"unknown code {code!r}",
                                hint=f"allowed values: {', '.join(sorted(known))}")
            if not name.strip():
                raise loc.error(f"names.{group}.{code}", "the name is empty", hint="write the name people read")


def _check_segment_names(book: Playbook, rules: dict[str, Any], loc: Locator) -> None:
    known = known_segment_names(book)
    tiers = [t.name for t in book.segments.tiers.tiers]
    referral = rules.get("referral")
    if referral is not None and referral.min_tier not in tiers:
        raise loc.error("rules.referral.min_tier", f"unknown tier {referral.min_tier!r}",
                        hint=f"allowed values: {', '.join(tiers)}")
    for kind, cfg in rules.items():
        refs = [(f"rules.{kind}.segments", getattr(cfg, "segments", []))]
        for group in ("dates", "offers", "sales"):  # holidays, seasonal offers, sales name segments each
            for i, item in enumerate(getattr(cfg, group, []) or []):
                if hasattr(item, "segments"):
                    refs.append((f"rules.{kind}.{group}[{i}].segments", item.segments))
        for path, names in refs:
            for j, name in enumerate(names):
                if name not in known:
                    raise loc.error(f"{path}[{j}]", f"unknown segment {name!r}",
                                    hint=f"allowed values: {', '.join(sorted(known))}")
