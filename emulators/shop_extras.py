"""What the playbook's second edition needs of the demo shop: prospects, promo buyers and term products.

Drawn from a random stream of their own (`_Generator.extra`), so every value the shop drew before
stays the same: the same seed gives the same customers, deals and genders as without them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from emulators import shop_records as shop

PLAYBOOK = Path(__file__).with_name("shop_playbook.toml")  # the bundled playbook plus this shop's ladders, seasons, sales

PROSPECT_SHARE = 0.04  # contacts created in the last PROSPECT_DAYS who have not bought yet (welcome series)
PROSPECT_DAYS = 30
PROMO_LOVER_SHARE = 0.12  # customers who mostly buy on discount (promo announcements)
PROMO_LOVER_DISCOUNTED, OTHERS_DISCOUNTED = 0.8, 0.08  # share of their won deals bought on a promo
PROMO_DISCOUNT = 0.1  # the promo's discount on each row (the row's price is after it)
SERVICE_SHARE = 0.03  # won deals that also renew a term product (a subscription, a service plan)

# Term products: bought now and then beside the goods, renewed when their term runs out (never picked
# as goods, so the draws of the rest of the shop stay the same): (name, price, term_days)
_SERVICES = (("Сервисное обслуживание кофемашины, год", 4990, 365), ("Подписка на кофе, 3 месяца", 5990, 90))
SERVICE_CATEGORY = "Сервис"


def services(first_id: int) -> list:
    """The term products, numbered after the goods (never picked as goods)."""
    return [shop.ShopProduct(i, name, SERVICE_CATEGORY, float(price), shop.MAIN_CURRENCY, None, term)
            for i, (name, price, term) in enumerate(_SERVICES, start=first_id)]


def promo_and_term(gen, c, lines: tuple, amount: float, currency: str) -> tuple[tuple, float, str]:
    """A won deal's promo discount and term product: (lines, amount, promo code)."""
    aside = gen.extra
    promo = ""
    if aside() < (PROMO_LOVER_DISCOUNTED if c.promo_lover else OTHERS_DISCOUNTED):
        promo = "PROMO10"
        off = PROMO_DISCOUNT / (1 - PROMO_DISCOUNT)
        lines = tuple(shop.ShopLine(ln.product_id, ln.quantity, ln.price, round(ln.price * off, 2))
                      for ln in lines)
    if aside() < SERVICE_SHARE and currency == shop.MAIN_CURRENCY:
        service = gen.services[int(aside() * len(gen.services))]
        lines = (*lines, shop.ShopLine(service.id, 1.0, service.price))
        amount = round(amount + service.price, 2)
    return lines, amount, promo


def prospects(gen) -> list:
    """Contacts created in the last PROSPECT_DAYS who have not bought yet, numbered after the buyers."""
    draw = gen.extra

    def pick(seq):
        return seq[int(draw() * len(seq))]

    out = []
    for cid in range(gen.n + 1, gen.n + 1 + int(gen.n * PROSPECT_SHARE)):
        if draw() < 0.5:
            first, last, gender = pick(shop._MALE_FIRST), pick(shop._LAST), "M"
        else:
            first, last, gender = pick(shop._FEMALE_FIRST), shop._female(pick(shop._LAST)), "F"
        mail = f"{shop._translit(first)}.{shop._translit(last)}{cid}@{shop._EMAIL_DOMAINS[cid % 3]}"
        emails = (mail,) if draw() < 0.85 else ()
        phones = (f"+79{int(draw() * 1e9):09d}",) if draw() < 0.7 or not emails else ()
        day = gen.today_ord - int(draw() * PROSPECT_DAYS)
        created = gen.base + timedelta(minutes=(day - gen.base_ord) * 1440 + 540 + int(draw() * 720))
        out.append(shop.ShopCustomer(cid, "person", f"{first} {last}", first, last, emails, phones, None,
                                     1 + int(draw() * len(gen.managers)), False, "prospect", created,
                                     gender=gender))
    return out
