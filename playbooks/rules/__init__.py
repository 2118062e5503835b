"""Rule registry: kind (the TOML key under [rules]) -> rule class. One file per kind."""

from __future__ import annotations

from playbooks.rules.base import Rule
from playbooks.rules.birthday import BirthdayRule
from playbooks.rules.bonus_expiry import BonusExpiryRule
from playbooks.rules.calendar import CalendarRule
from playbooks.rules.cross_sell import CrossSellRule
from playbooks.rules.holidays import HolidaysRule
from playbooks.rules.loyalty import LoyaltyRule
from playbooks.rules.nps import NpsRule
from playbooks.rules.promo import PromoRule
from playbooks.rules.reactivation import ReactivationRule
from playbooks.rules.referral import ReferralRule
from playbooks.rules.renewal import RenewalRule
from playbooks.rules.replenishment import ReplenishmentRule
from playbooks.rules.seasonal import SeasonalRule
from playbooks.rules.upsell import UpsellRule
from playbooks.rules.welcome import WelcomeRule

# Registry order is the planning order (plans are sorted afterwards anyway).
RULES: tuple[type[Rule], ...] = (
    CalendarRule,
    ReactivationRule,
    ReplenishmentRule,
    CrossSellRule,
    LoyaltyRule,
    BirthdayRule,
    HolidaysRule,
    BonusExpiryRule,
    NpsRule,
    ReferralRule,
    UpsellRule,
    SeasonalRule,
    WelcomeRule,
    RenewalRule,
    PromoRule,
)

REGISTRY: dict[str, type[Rule]] = {cls.kind: cls for cls in RULES}
