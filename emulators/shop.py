"""A deterministic synthetic shop: managers, a catalogue, customers with purchase rhythms, deals.

CRM-neutral ground truth for the emulators, tests and benchmarks. The same
(customers, seed, today) always gives the same shop; every date is relative to `today`.
Stdlib only; slots dataclasses and tuples keep 200k customers / ~1M deals in memory.
"""

from __future__ import annotations

import gc
import random
from datetime import date, datetime, time, timedelta
from operator import itemgetter

from connector import clock
from emulators import shop_extras as extras
from emulators.shop_records import (  # noqa: F401 - the shop's records are read from here too
    _BIRTH_FIRST,
    _BIRTH_LAST,
    _CATALOGUE,
    _COMPANY_NAMES,
    _COMPANY_WORDS,
    _EMAIL_DOMAINS,
    _FEMALE_FIRST,
    _FIRED_MANAGER_INDEX,
    _KEY_SPAN,
    _LAST,
    _MALE_FIRST,
    _MALE_FIRST_SET,
    _MANAGERS,
    BIRTHDAY_SHARE,
    COMPANY_SHARE,
    DEAL_LOST,
    DEAL_OPEN,
    DEAL_WON,
    DEMO_REFERRAL_SECRET,
    FOREIGN_RATES,
    GENDER_KNOWN_SHARE,
    HISTORY_DAYS_MAX,
    HISTORY_DAYS_MIN,
    MAIN_CURRENCY,
    NPS_ANSWER_SHARE,
    NPS_ASKED_ON_DAY,
    NPS_WEIGHTS,
    OPT_OUT_SHARE,
    PIPELINES,
    REFERRED_SHARE,
    RHYTHM_WEIGHTS,
    RHYTHMS,
    Shop,
    ShopContact,
    ShopCustomer,
    ShopDeal,
    ShopLine,
    ShopManager,
    ShopProduct,
    _female,
    _translit,
    referral_code_of,
)

# ---- generator -----------------------------------------------------------------------------


class _Generator:
    """One pass over customers with a single seeded RNG; deals get ids in creation order.

    Hot paths use `random()` arithmetic instead of `randint`/`choice`: a million deals must
    generate in seconds.
    """

    def __init__(self, customers: int, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.rnd = self.rng.random
        # a second stream for values added later (gender): every value drawn from `rng` stays the same
        self.aside = random.Random(f"repeat-sales-shop-aside-{seed}").random
        # a third for the playbook's second edition (promos, term products, prospects): genders stay the same
        self.extra = random.Random(f"repeat-sales-shop-extra-{seed}").random
        self.n = customers
        self.seed = seed
        self.today = today
        self.history_days = self.rng.randint(HISTORY_DAYS_MIN, HISTORY_DAYS_MAX)
        self.start = today - timedelta(days=self.history_days)
        self.start_ord = self.start.toordinal()
        self.today_ord = today.toordinal()
        # Moments are minutes after `base` (midnight, 90 days before the history starts).
        self.base_ord = self.start_ord - 90
        self.base = datetime.combine(date.fromordinal(self.base_ord), time())
        catalogue = [(cat, *item) for cat, items in _CATALOGUE.items() for item in items]
        self.products = [ShopProduct(i, name, cat, float(price), MAIN_CURRENCY, cycle)
                         for i, (cat, name, price, cycle) in enumerate(catalogue, start=1)]
        self.consumables = [p for p in self.products if p.cycle_days]
        # Consumables people keep buying on a cycle: the monthly-to-quarterly ones.
        self.cycle_products = [p for p in self.consumables if 21 <= (p.cycle_days or 0) <= 90]
        self.durables = [p for p in self.products if not p.cycle_days]
        self.services = extras.services(len(self.products) + 1)
        self.products += self.services
        self.managers = [
            ShopManager(i, first, last, f"{_translit(first)}.{_translit(last)}@shop.example.com",
                        active=(i - 1) != _FIRED_MANAGER_INDEX)
            for i, (first, last) in enumerate(_MANAGERS[:6], start=1)
        ]
        # (sort key, deal without id); deals get ids once sorted by creation.
        self.raw: list[tuple[int, ShopDeal]] = []
        self.line_cache: dict[tuple, tuple[ShopLine, ...]] = {}

    def _pick(self, seq):
        return seq[int(self.rnd() * len(seq))]

    def _between(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        return lo + int(self.rnd() * (hi - lo + 1))

    # -- people --
    def _person(self) -> tuple[str, str]:
        last = self._pick(_LAST)
        if self.rnd() < 0.5:
            return self._pick(_MALE_FIRST), last
        return self._pick(_FEMALE_FIRST), _female(last)

    def _gender(self, first: str) -> str | None:
        """The person's gender as the card shows it (from the first name), unless left empty."""
        if self.aside() >= GENDER_KNOWN_SHARE:
            return None
        return "M" if first in _MALE_FIRST_SET else "F"

    def _email(self, first: str, last: str) -> str:
        return f"{_translit(first)}.{_translit(last)}{self._between(1, 999)}@{self._pick(_EMAIL_DOMAINS)}"

    def _phone(self) -> str:
        return f"+79{self._between(0, 999_999_999):09d}"

    def _channels(self, first: str, last: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """70% both, 12% email only, 10% phone only, 8% neither."""
        r = self.rnd()
        email = (self._email(first, last),) if r < 0.82 else ()
        phone = (self._phone(),) if r < 0.70 or 0.82 <= r < 0.92 else ()
        return email, phone

    def customer(self, cid: int) -> ShopCustomer:
        rng, rnd = self.rng, self.rnd
        rhythm = rng.choices(RHYTHMS, RHYTHM_WEIGHTS)[0]
        manager_id = self._between(1, len(self.managers))
        no_marketing = rnd() < OPT_OUT_SHARE
        if rnd() < COMPANY_SHARE:
            word, brand = self._pick(_COMPANY_WORDS), self._pick(_COMPANY_NAMES)
            name = f"{word} «{brand}»"
            contacts = []
            for _ in range(self._between(1, 3)):
                first, last = self._person()
                emails, phones = self._channels(first, last)
                contacts.append(ShopContact(first, last, emails[0] if emails else None,
                                            phones[0] if phones else None, self._gender(first)))
            emails = (f"info@{_translit(brand)}{cid}.example.com",) if rnd() < 0.8 else ()
            phones = (self._phone(),) if rnd() < 0.9 else ()
            kind, first, last, birthday, gender = "company", "", "", None, None
            contacts_t = tuple(contacts)
        else:
            first, last = self._person()
            name = f"{first} {last}"
            emails, phones = self._channels(first, last)
            birthday = None
            if rnd() < BIRTHDAY_SHARE:
                birthday = date.fromordinal(self._between(_BIRTH_FIRST, _BIRTH_LAST))
            kind, contacts_t, gender = "person", (), self._gender(first)
        cycle_product = self._pick(self.cycle_products) if rhythm == "consumable" else None
        churned_on = None
        if rhythm == "churned":
            churned_on = date.fromordinal(self.today_ord - self._between(180, 540))
        first_ord = self._first_purchase_ordinal(rhythm, churned_on)
        created = self._moment(first_ord - self._between(0, 30))
        customer = ShopCustomer(
            cid, kind, name, first, last, emails, phones, birthday, manager_id, no_marketing,
            rhythm, created, contacts_t, cycle_product.id if cycle_product else None, churned_on, gender,
            self.extra() < extras.PROMO_LOVER_SHARE)
        self._purchases(customer, first_ord, cycle_product)
        return customer

    def _first_purchase_ordinal(self, rhythm: str, churned_on: date | None) -> int:
        rnd, days = self.rnd, self.history_days
        if rhythm == "one_off":
            return self.start_ord + int(rnd() * days)
        if rhythm == "seasonal":
            return self.start_ord + int(rnd() * 60)
        if churned_on is not None:  # bought for 4-12 months, then stopped
            return max(self.start_ord, churned_on.toordinal() - self._between(120, 360))
        # Regular, consumable and VIP customers joined at any time, more of them recently.
        return self.start_ord + int(max(rnd(), rnd(), rnd()) * (days - 60))

    def _moment(self, ordinal: int) -> datetime:
        """A working-hours moment on that day (days outside the history are clamped)."""
        ordinal = max(min(ordinal, self.today_ord), self.base_ord)
        minutes = (ordinal - self.base_ord) * 1440 + 540 + int(self.rnd() * 720)
        return self.base + timedelta(minutes=minutes)

    # -- purchases --
    def _purchase_days(self, c: ShopCustomer, first_ord: int, cycle_product: ShopProduct | None) -> list[int]:
        rnd, today_ord = self.rnd, self.today_ord
        days: list[int] = []
        if c.rhythm == "one_off":
            return [first_ord]
        if c.rhythm in ("regular", "churned", "vip"):
            lo, hi = (14, 30) if c.rhythm == "vip" else (30, 60)
            interval = self._between(lo, hi)
            stop = c.churned_on.toordinal() if c.churned_on else today_ord + 1
            d = first_ord
            while d < stop:
                days.append(d)
                d += int(interval * (0.8 + 0.4 * rnd()))
            return days
        if c.rhythm == "seasonal":  # the same one or two months every year
            months = self.rng.sample(range(1, 13), 1 + (rnd() < 0.5))
            for year in range(self.start.year, self.today.year + 1):
                for m in months:
                    if rnd() < 0.85:
                        o = date(year, m, self._between(1, 28)).toordinal()
                        if first_ord <= o <= today_ord:
                            days.append(o)
            days.sort()
            return days or [first_ord]
        cycle = (cycle_product.cycle_days if cycle_product else None) or 30
        d = first_ord
        while d <= today_ord:  # consumable: one unit lasts a cycle, two units two cycles
            days.append(d)
            qty = 2 if rnd() < 0.15 else 1
            d += max(3, int(cycle * qty * (0.85 + 0.3 * rnd())))
        return days

    def _purchases(self, c: ShopCustomer, first_ord: int, cycle_product: ShopProduct | None) -> None:
        rnd = self.rnd
        days = self._purchase_days(c, first_ord, cycle_product)
        pipeline = 1 if c.kind == "company" else 0
        for o in days:
            self._deal(c, o, DEAL_WON, pipeline, cycle_product)
        # Lost deals: roughly one per ten purchases, at random moments of the customer's life.
        for _ in range(sum(1 for _ in days if rnd() < 0.1)):
            self._deal(c, self._between(first_ord, self.today_ord), DEAL_LOST, pipeline, None)
        if rnd() < 0.05:  # a deal in progress, opened in the last month
            self._deal(c, self.today_ord - int(rnd() * 30), DEAL_OPEN, pipeline, None)

    def _lines(self, c: ShopCustomer, cycle_product: ShopProduct | None) -> list[tuple[int, float, float]]:
        rnd = self.rnd
        if cycle_product is not None:
            lines = [(cycle_product.id, 2.0 if rnd() < 0.15 else 1.0, cycle_product.price)]
            if rnd() < 0.2:
                p = self._pick(self.durables)
                lines.append((p.id, 1.0, p.price))
            return lines
        if c.rhythm == "vip":
            n = self._between(2, 5)
        else:
            n = 1 if rnd() < 0.6 else self._between(2, 3)
        big = c.kind == "company" or c.rhythm == "vip"
        lines = []
        for _ in range(n):
            p = self._pick(self.consumables) if rnd() < 0.6 else self._pick(self.durables)
            qty = float(self._between(2, 10)) if big and p.cycle_days else 1.0
            lines.append((p.id, qty, p.price))
        return lines

    def _deal(self, c: ShopCustomer, ordinal: int, status: str, pipeline: int,
              cycle_product: ShopProduct | None) -> None:
        rnd = self.rnd
        ordinal = max(min(ordinal, self.today_ord), self.base_ord)
        closed_min = (ordinal - self.base_ord) * 1440 + 540 + int(rnd() * 720)
        created_min = closed_min - int(rnd() * 4320)  # opened up to 3 days before
        base = self.base
        created = base + timedelta(minutes=created_min)
        closed = None if status == DEAL_OPEN else base + timedelta(minutes=closed_min)
        currency = MAIN_CURRENCY
        r = rnd()
        if status == DEAL_WON and r < 0.02:  # amount only, no line items
            lines: tuple[ShopLine, ...] = ()
            amount = float(self._between(5, 300) * 100)
        else:
            raw = self._lines(c, cycle_product)
            if r > 0.97:  # priced in a second currency
                currency = "USD" if r > 0.985 else "EUR"
                rate = FOREIGN_RATES[currency]
                lines = tuple([ShopLine(pid, q, round(price / rate, 2)) for pid, q, price in raw])
            else:
                lines = self._shared_lines(raw)
            amount = round(sum([ln.quantity * ln.price for ln in lines]), 2)
        manager_id = c.manager_id if rnd() < 0.9 else self._between(1, len(self.managers))
        promo = ""
        if status == DEAL_WON and lines:
            lines, amount, promo = extras.promo_and_term(self, c, lines, amount, currency)
        deal = ShopDeal(0, c.id, manager_id, status, pipeline, created, closed, amount, currency, lines, promo=promo)
        # One int key sorts fast: creation minute, then customer id.
        self.raw.append((created_min * _KEY_SPAN + c.id, deal))

    def _shared_lines(self, raw: list[tuple[int, float, float]]) -> tuple[ShopLine, ...]:
        """Catalogue-priced lines are immutable and repeat a lot: share them to save memory."""
        cache = self.line_cache
        key = tuple(raw)
        lines = cache.get(key)
        if lines is None:
            lines = cache[key] = tuple([ShopLine(pid, q, price) for pid, q, price in raw])
        return lines

    def _feedback_and_referrals(self, deals: list[ShopDeal], customers: list[ShopCustomer]) -> None:
        """NPS answers on some won deals, and referral codes on some first deals: drawn from their own
        stream, so every other value of the shop stays what it was."""
        rng = random.Random(f"repeat-sales-shop-feedback-{self.seed}")
        people = {c.id: c.kind == "person" for c in customers}  # a person's code is on their own card
        won_so_far: dict[int, int] = {}
        regulars: list[int] = []  # customers with 3+ won deals so far: they hold a code
        for deal in deals:
            if not deal.won:
                continue
            if rng.random() < NPS_ANSWER_SHARE and (self.today - deal.closed.date()).days >= NPS_ASKED_ON_DAY:
                deal.nps = rng.choices(range(11), NPS_WEIGHTS)[0]
            seen = won_so_far.get(deal.customer_id, 0)
            if seen == 0 and regulars and rng.random() < REFERRED_SHARE:
                deal.referred_by = regulars[int(rng.random() * len(regulars))]
            won_so_far[deal.customer_id] = seen + 1
            if seen + 1 == 3 and people[deal.customer_id]:
                regulars.append(deal.customer_id)

    def build(self) -> Shop:
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small objects: the cyclic GC only slows this down
        try:
            customers = [self.customer(cid) for cid in range(1, self.n + 1)]
            customers += extras.prospects(self)
            self.raw.sort(key=itemgetter(0))
            deals = [deal for _, deal in self.raw]
            self.raw = []
            for i, deal in enumerate(deals, start=1):
                deal.id = i
            self._feedback_and_referrals(deals, customers)
        finally:
            if gc_was_enabled:
                gc.enable()
        return Shop(self.seed, self.today, self.start, self.managers, self.products, customers, deals)


def generate_shop(customers: int = 300, seed: int = 42, today: date | None = None) -> Shop:
    """Build the shop; deals are sorted by creation time, so deal ids grow with time.

    The same arguments give an identical shop. `today` defaults to the real date, so pass it
    in tests that compare dates.
    """
    if customers < 0:
        raise ValueError("customers must be >= 0")
    return _Generator(customers, seed, today or clock.today()).build()
