"""The demo shop's records and the words it is made of: customers, products, deals, names.

What emulators.shop generates and emulators.shop_extras adds to; split out so both can use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

RHYTHMS = ("one_off", "regular", "seasonal", "consumable", "churned", "vip")
# Share of customers per rhythm (sums to 1); one-off buyers are the biggest group, as in real shops.
RHYTHM_WEIGHTS = (0.35, 0.18, 0.10, 0.14, 0.15, 0.08)
COMPANY_SHARE = 0.05
OPT_OUT_SHARE = 0.04
BIRTHDAY_SHARE = 0.8
GENDER_KNOWN_SHARE = 0.85  # people whose card says Mr / Ms (the rest left it empty)
NPS_ANSWER_SHARE = 0.3  # won deals whose feedback question got an answer (0-10)
NPS_WEIGHTS = (1, 1, 1, 1, 2, 2, 3, 5, 8, 10, 8)  # how often each answer 0..10 comes back
NPS_ASKED_ON_DAY = 7  # the question goes out a week after the purchase: a younger deal has no answer yet
REFERRED_SHARE = 0.05  # customers whose first deal carries a referral code of an earlier regular
# the referral secret of the demo settings (REFERRAL_SECRET): the codes customers bring are real ones
DEMO_REFERRAL_SECRET = "repeat-sales-demo-referral-secret"


def referral_code_of(crm_customer_id: object) -> str:
    """The code a referred customer typed: the referrer's real code under the demo secret, keyed by the
    referrer's id in the CRM the shop is loaded into."""
    from playbooks.referral import referral_code

    return referral_code(str(crm_customer_id), DEMO_REFERRAL_SECRET)

HISTORY_DAYS_MIN, HISTORY_DAYS_MAX = 730, 1095
MAIN_CURRENCY = "RUB"
# Shop-internal rates used to price the few foreign-currency deals (RUB per unit).
FOREIGN_RATES = {"USD": 90.0, "EUR": 100.0}
PIPELINES = ("Розница", "Опт")  # 0 = retail (people), 1 = wholesale (companies)

DEAL_WON, DEAL_LOST, DEAL_OPEN = "won", "lost", "open"
_KEY_SPAN = 1 << 32  # customer ids stay below this in the deal sort key


@dataclass(slots=True, frozen=True)
class ShopManager:
    id: int
    first_name: str
    last_name: str
    email: str
    active: bool = True  # False: the manager was fired, but still owns customers


@dataclass(slots=True, frozen=True)
class ShopProduct:
    id: int
    name: str
    category: str
    price: float
    currency: str = MAIN_CURRENCY
    cycle_days: int | None = None  # how long one unit lasts; None for durable goods
    term_days: int | None = None  # a subscription or a service plan: how long it runs


@dataclass(slots=True, frozen=True)
class ShopContact:
    """A person who buys for a company customer (B2B)."""

    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    gender: str | None = None  # "M" | "F" | None (not on the card)


@dataclass(slots=True, frozen=True)
class ShopCustomer:
    id: int
    kind: str  # "person" | "company"
    name: str  # full name of a person, or the company's name
    first_name: str
    last_name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    birthday: date | None
    manager_id: int
    no_marketing: bool  # opted out of marketing messages
    rhythm: str  # one of RHYTHMS: the ground truth of how this customer buys
    created: datetime
    contacts: tuple[ShopContact, ...] = ()  # company customers only
    cycle_product_id: int | None = None  # consumable customers: the product bought on a cycle
    churned_on: date | None = None  # churned customers: the day after their last purchase
    gender: str | None = None  # people: "M" | "F", or None when the card does not say; companies: None
    promo_lover: bool = False  # mostly buys on a promo


@dataclass(slots=True, frozen=True)
class ShopLine:
    product_id: int
    quantity: float
    price: float  # per unit, in the deal's currency
    discount: float = 0.0  # money off one unit on a promo (`price` is after it)


@dataclass(slots=True)
class ShopDeal:
    id: int
    customer_id: int
    manager_id: int
    status: str  # "won" (a purchase) | "lost" | "open"
    pipeline: int  # index into PIPELINES
    created: datetime
    closed: datetime | None  # None while open
    amount: float
    currency: str
    lines: tuple[ShopLine, ...]
    nps: int | None = None  # the customer's 0-10 answer to the feedback question (a deal field)
    referred_by: int | None = None  # a first deal: the customer whose referral code the new customer brought
    promo: str = ""  # the promo code the deal was won with

    @property
    def won(self) -> bool:
        return self.status == DEAL_WON


@dataclass(slots=True)
class Shop:
    seed: int
    today: date
    history_start: date
    managers: list[ShopManager]
    products: list[ShopProduct]
    customers: list[ShopCustomer]
    deals: list[ShopDeal]
    pipelines: tuple[str, ...] = PIPELINES

    @property
    def categories(self) -> list[str]:
        """Product categories in catalogue order."""
        return list(dict.fromkeys(p.category for p in self.products))

    def won_deals(self) -> list[ShopDeal]:
        """The purchases: won deals, in id (creation) order."""
        return [d for d in self.deals if d.status == DEAL_WON]

    def customer(self, customer_id: int) -> ShopCustomer:
        return self.customers[customer_id - 1]

    def bonus_payments(self) -> dict[int, float]:
        """Deal id -> bonuses the customer paid with on it: every 4th repeat purchase in roubles (by
        deal id) pays 2 % of the customer's previous purchase, about what that purchase earned - so
        a payment is usually covered by the balance, and the cap and the balance are still tried."""
        out: dict[int, float] = {}
        last: dict[int, ShopDeal] = {}
        for d in sorted(self.won_deals(), key=lambda d: (d.closed, d.id)):
            prev = last.get(d.customer_id)
            if prev is not None and d.currency == "RUB" and prev.currency == "RUB" and d.id % 4 == 0:
                out[d.id] = float(int(prev.amount * 0.02))
            last[d.customer_id] = d
        return {k: v for k, v in out.items() if v > 0}

    def product(self, product_id: int) -> ShopProduct:
        return self.products[product_id - 1]

    def manager(self, manager_id: int) -> ShopManager:
        return self.managers[manager_id - 1]

    def rhythm_counts(self) -> dict[str, int]:
        """Buyers by rhythm (prospects, who never bought, are not among them)."""
        counts = dict.fromkeys(RHYTHMS, 0)
        for c in self.customers:
            if c.rhythm in counts:
                counts[c.rhythm] += 1
        return counts


# ---- catalogue ----------------------------------------------------------------------------

# category -> (name, price in RUB, cycle_days or None for durable goods)
_CATALOGUE: dict[str, tuple[tuple[str, int, int | None], ...]] = {
    "Кофе": (("Кофе в зёрнах Эфиопия Иргачеффе 1 кг", 2190, 30),
             ("Кофе в зёрнах Колумбия Супремо 1 кг", 1890, 30),
             ("Кофе в зёрнах Бразилия Сантос 1 кг", 1590, 30),
             ("Кофе в зёрнах Эспрессо-смесь 1 кг", 1690, 30), ("Кофе в зёрнах Кения АА 250 г", 790, 14),
             ("Кофе молотый для турки 500 г", 890, 30), ("Кофе в капсулах, 50 шт.", 1490, 21)),
    "Чай": (("Чай улун Те Гуань Инь 250 г", 1290, 45), ("Чай пуэр шу 357 г", 1990, 60),
            ("Чай зелёный Сенча 250 г", 890, 45), ("Чай чёрный Ассам 500 г", 990, 60)),
    "Фильтры для воды": (("Картридж для фильтра-кувшина, 3 шт.", 990, 90),
                         ("Картридж для проточного фильтра", 1790, 180),
                         ("Мембрана обратного осмоса", 3490, 365)),
    "Корм для животных": (("Корм для кошек сухой 2 кг", 1890, 30),
                          ("Корм для собак сухой 12 кг", 5490, 45),
                          ("Влажный корм для кошек, 24 шт.", 1390, 14),
                          ("Наполнитель для туалета 10 л", 690, 21)),
    "Контактные линзы": (("Однодневные линзы, 30 шт.", 1790, 30), ("Однодневные линзы, 90 шт.", 4690, 90),
                         ("Линзы на месяц, 6 шт.", 2890, 90), ("Раствор для линз 360 мл", 590, 30)),
    "Кофемолки": (("Кофемолка жерновая электрическая", 8990, None), ("Кофемолка ручная", 3490, None),
                  ("Кофемолка профессиональная", 24990, None)),
    "Кофеварки": (("Гейзерная кофеварка", 2490, None), ("Кофемашина рожковая", 34990, None),
                  ("Капсульная кофемашина", 12990, None), ("Френч-пресс 1 л", 1990, None)),
    "Чайники": (("Электрочайник с термостатом", 5990, None), ("Чайник заварочный стеклянный", 1290, None),
                ("Чайник-кемекс для пуровера", 3990, None)),
    "Аксессуары": (("Весы кофейные с таймером", 2990, None), ("Темпер 58 мм", 1490, None),
                   ("Питчер для молока", 990, None), ("Набор чашек для эспрессо", 1890, None),
                   ("Фильтр-кувшин", 1490, None), ("Миска для питомца", 690, None),
                   ("Контейнер для линз", 290, None), ("Фильтры бумажные для пуровера, 100 шт.", 490, 60)),
}

_MANAGERS = (
    ("Анна", "Смирнова"),
    ("Игорь", "Кузнецов"),
    ("Ольга", "Попова"),
    ("Дмитрий", "Васильев"),
    ("Елена", "Морозова"),
    ("Павел", "Новиков"),
    ("Светлана", "Фёдорова"),
)
_FIRED_MANAGER_INDEX = 4  # Елена Морозова left the company; her customers stay assigned to her

_MALE_FIRST = ("Александр", "Алексей", "Андрей", "Артём", "Борис", "Вадим", "Виктор", "Владимир",
               "Георгий", "Денис", "Евгений", "Иван", "Кирилл", "Максим", "Михаил", "Никита",
               "Олег", "Роман", "Сергей", "Юрий")
_FEMALE_FIRST = ("Алина", "Анастасия", "Валерия", "Вера", "Дарья", "Екатерина", "Ирина", "Ксения",
                 "Лариса", "Марина", "Мария", "Наталья", "Полина", "Софья", "Татьяна", "Юлия")
_MALE_FIRST_SET = frozenset(_MALE_FIRST)
# Male surnames; the female form adds "а" (Иванов -> Иванова) or swaps "ий" for "ая".
_LAST = ("Иванов", "Петров", "Соколов", "Лебедев", "Козлов", "Волков", "Зайцев", "Павлов",
         "Семёнов", "Голубев", "Виноградов", "Богданов", "Воробьёв", "Тарасов", "Белов",
         "Комаров", "Орлов", "Киселёв", "Макаров", "Андреев", "Ковалёв", "Ильин", "Гусев",
         "Титов", "Кудрявцев", "Баранов", "Куликов", "Алексеев", "Степанов", "Яковлев",
         "Сорокин", "Никитин", "Захаров", "Зуев", "Павленко", "Шевченко", "Бондаренко",
         "Ткаченко", "Крылов", "Максимов", "Поляков", "Жуков", "Медведев", "Ершов",
         "Островский", "Вишневский", "Левицкий", "Смирнов")
_COMPANY_WORDS = ("Кофейня", "Ресторан", "Офис-сервис", "Бюро", "Студия", "Клиника", "Отель",
                  "Кейтеринг", "Коворкинг", "Автосалон")
_COMPANY_NAMES = ("Ромашка", "Северный ветер", "Зерно", "Утро", "Бодрость", "Арома", "Меридиан",
                  "Вектор", "Гранат", "Ладога", "Сфера", "Пилигрим", "Кварц", "Сезон", "Полюс")
_BIRTH_FIRST, _BIRTH_LAST = date(1955, 1, 1).toordinal(), date(2004, 12, 31).toordinal()
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                     ("a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n",
                      "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y",
                      "", "e", "yu", "ya"), strict=True))


def _translit(text: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in text.lower() if ch.isalnum())


def _female(last: str) -> str:
    if last.endswith("ий"):
        return last[:-2] + "ая"
    if last.endswith(("ов", "ев", "ёв", "ин")):
        return last + "а"
    return last  # -енко and the like do not change
