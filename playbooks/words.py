"""The sales team's words for the codes the playbook works with, in the playbook's language.

Segments, lifecycle stages, value levels, trends, tiers, metrics and rules have stable codes
(`champions`, `crr_12m`, `reactivation`): JSON, keys and CRM filters keep them. Anything a person
reads shows the name instead ("Чемпионы", "Удержание за 12 месяцев"). A playbook renames any of
them in its `[names.<group>]` table (checked at load: an unknown code is an error with its line);
a tier's `label` names it too.

    names = names_for(playbook)        # or Names("en")
    names.segment("champions")         # "Чемпионы"
    names.tier("gold"), names.metric("ltv_3f"), names.rule("reactivation"), names.of("lifecycle", "new")
"""

from __future__ import annotations

from collections.abc import Mapping

GROUPS = ("segments", "lifecycle", "value", "trend", "tiers", "metrics", "rules")

RU: dict[str, dict[str, str]] = {
    "segments": {"champions": "Чемпионы", "lost_champions": "Потерянные чемпионы", "loyal": "Лояльные",
                 "at_risk": "В зоне риска", "new": "Новые", "promising": "Перспективные",
                 "hibernating": "Засыпающие", "lost": "Потерянные", "others": "Остальные",
                 "no_purchases": "Без покупок", "none": "Ещё не клиенты", "holdout": "Контрольная группа"},
    "lifecycle": {"prospect": "Потенциальный", "new": "Новый", "active": "Активный", "sleeping": "Спящий",
                  "lost": "Потерянный"},
    "value": {"base": "Базовая", "middle": "Средняя", "vip": "VIP"},
    "trend": {"growing": "Растёт", "stable": "Стабильный", "fading": "Угасает"},
    "tiers": {"bronze": "Бронза", "silver": "Серебро", "gold": "Золото", "none": "Без уровня"},
    "metrics": {"customers": "Клиенты", "prospects": "Без покупок", "purchases": "Покупки",
                "revenue": "Выручка", "currency": "Валюта", "repeat_rate": "Доля повторных покупателей",
                "purchase_frequency": "Покупок на клиента", "aov": "Средний чек",
                "aov_new": "Средний чек первой покупки", "aov_returning": "Средний чек повторной покупки",
                "ltv": "Выручка на клиента (LTV по истории)",
                "purchases_per_year": "Покупок в год (активные клиенты)",
                "lifespan_years": "Срок жизни клиента, лет",
                "ltv_3f": "Прогнозная LTV (средний чек × покупок в год × срок жизни)",
                "churn_rate": "Отток (доля потерянных клиентов)", "crr_12m": "Удержание клиентов за 12 месяцев",
                "new_customers_12m": "Новые клиенты за 12 месяцев",
                "excluded_other_currency": "Покупки в валюте без курса (не учтены)",
                "returning_revenue_share": "Доля выручки от вернувшихся клиентов",
                "returning_orders_share": "Доля заказов от вернувшихся клиентов",
                "nps_answers": "Ответов на опрос NPS", "planned": "Запланировано касаний",
                "suppressed": "Касаний придержано правилами",
                "cac": "Стоимость привлечения клиента", "ltv_cac": "LTV / стоимость привлечения"},
    "rules": {"calendar": "Календарь после покупки", "reactivation": "Возврат уснувших",
              "replenishment": "Пополнение запаса", "cross_sell": "Сопутствующие товары",
              "loyalty": "Программа лояльности", "birthday": "День рождения", "holidays": "Праздники",
              "segment": "Поля карточки", "bonus_expiry": "Сгорание бонусов", "nps": "Опрос NPS",
              "promo": "Промоакция", "referral": "Приведи друга", "renewal": "Продление", "seasonal": "Сезон",
              "upsell": "Допродажа", "welcome": "Приветственная серия"},
}

EN: dict[str, dict[str, str]] = {
    "segments": {"champions": "Champions", "lost_champions": "Lost champions", "loyal": "Loyal",
                 "at_risk": "At risk", "new": "New", "promising": "Promising", "hibernating": "Hibernating",
                 "lost": "Lost", "others": "Others", "no_purchases": "No purchases", "none": "Not a customer yet",
                 "holdout": "Hold-out group"},
    "lifecycle": {"prospect": "Prospect", "new": "New", "active": "Active", "sleeping": "Sleeping",
                  "lost": "Lost"},
    "value": {"base": "Base", "middle": "Middle", "vip": "VIP"},
    "trend": {"growing": "Growing", "stable": "Stable", "fading": "Fading"},
    "tiers": {"bronze": "Bronze", "silver": "Silver", "gold": "Gold", "none": "No tier"},
    "metrics": {"customers": "Customers", "prospects": "Prospects", "purchases": "Purchases", "revenue": "Revenue",
                "currency": "Currency", "repeat_rate": "Repeat rate", "purchase_frequency": "Purchases per customer",
                "aov": "Average order value", "aov_new": "Average first order",
                "aov_returning": "Average repeat order", "ltv": "Revenue per customer (historic LTV)",
                "purchases_per_year": "Purchases per year (active customers)",
                "lifespan_years": "Customer lifespan, years",
                "ltv_3f": "Predicted LTV (order value × purchases per year × lifespan)",
                "churn_rate": "Churn rate (lost customers)", "crr_12m": "Customer retention, 12 months",
                "new_customers_12m": "New customers, last 12 months",
                "excluded_other_currency": "Purchases in a currency without a rate (left out)",
                "cac": "Customer acquisition cost", "ltv_cac": "LTV / acquisition cost",
                "returning_revenue_share": "Revenue share of returning customers",
                "returning_orders_share": "Order share of returning customers", "nps_answers": "NPS answers",
                "planned": "Touches planned", "suppressed": "Touches held back by the rules"},
    "rules": {"calendar": "Post-purchase calendar", "reactivation": "Win-back", "replenishment": "Replenishment",
              "cross_sell": "Cross-sell", "loyalty": "Loyalty", "birthday": "Birthday",
              "holidays": "Holidays", "segment": "Card fields", "bonus_expiry": "Bonus expiry",
              "nps": "NPS survey", "promo": "Promotion", "referral": "Refer a friend", "renewal": "Renewal",
              "seasonal": "Season", "upsell": "Upsell", "welcome": "Welcome series"},
}

TABLES = {"ru": RU, "en": EN}


def readable(code: str) -> str:
    """A code nobody named, made readable: `vip_hunters` -> `Vip hunters`."""
    text = str(code).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class Names:
    """The names of one language, with a playbook's own names over them."""

    def __init__(self, lang: str = "ru", own: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.lang = lang if lang in TABLES else "ru"
        base = TABLES[self.lang]
        self.tables = {g: {**base.get(g, {}), **dict((own or {}).get(g) or {})} for g in GROUPS}

    def of(self, group: str, code: str | None) -> str:
        """The name of `code` in `group` ("" for an empty code); a `value:vip`-style prefix picks the group."""
        if not code:
            return ""
        prefix, sep, rest = str(code).partition(":")
        if sep and prefix in ("lifecycle", "value", "trend", "tier"):
            return self.of("tiers" if prefix == "tier" else prefix, rest)
        return self.tables.get(group, {}).get(code) or readable(code)

    def segment(self, code: str | None) -> str:
        return self.of("segments", code)

    def lifecycle(self, code: str | None) -> str:
        return self.of("lifecycle", code)

    def value(self, code: str | None) -> str:
        return self.of("value", code)

    def trend(self, code: str | None) -> str:
        return self.of("trend", code)

    def tier(self, code: str | None) -> str:
        return self.of("tiers", code)

    def metric(self, code: str) -> str:
        return self.of("metrics", code)

    def rule(self, code: str) -> str:
        return self.of("rules", code)

    def as_dict(self) -> dict[str, dict[str, str]]:
        """Every table, for a page or a report (JSON)."""
        return {g: dict(t) for g, t in self.tables.items()}


def names_for(playbook) -> Names:
    """The playbook's language with its `[names]` tables and its tiers' labels."""
    own = {g: dict(t) for g, t in (getattr(playbook, "names", None) or {}).items()}
    segments = getattr(playbook, "segments", None)
    if segments is not None:
        labels = {t.name: t.label for t in segments.tiers.tiers if t.label}
        own["tiers"] = {**labels, **own.get("tiers", {})}
    return Names(getattr(playbook, "lang", "ru"), own)


def known_codes(playbook, group: str) -> set[str]:
    """The codes a playbook's `[names.<group>]` may rename."""
    if group == "segments":
        rfm = playbook.segments.rfm
        return {s.name for s in rfm.segments} | {rfm.fallback, "no_purchases", "none", "holdout"}
    if group == "tiers":
        return {t.name for t in playbook.segments.tiers.tiers} | {playbook.segments.tiers.none}
    if group == "rules":
        from playbooks.rules import REGISTRY

        return set(REGISTRY) | {"segment"}
    return set(EN[group])
