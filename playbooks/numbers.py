"""Numbers and money as the team reads them: `29 663 656 ₽`, `12,3 %` in Russian, `29,663,656`, `12.3%` in English.

Russian groups thousands with a no-break space (U+00A0, what browsers' `Intl.NumberFormat("ru-RU")`
prints, so a page's script and the server agree) and writes a decimal comma; the sign and the
unit stay on the number's line.
"""

from __future__ import annotations

import math

NBSP = "\u00a0"
SYMBOLS = {"RUB": "₽", "USD": "$", "EUR": "€", "KZT": "₸", "UAH": "₴", "BYN": "Br", "GBP": "£"}


def number(value: float, lang: str = "ru", decimals: int = 0) -> str:
    """`1234567.8, "ru", 1` -> `1 234 567,8`; `"en"` -> `1,234,567.8`."""
    text = f"{value:,.{decimals}f}"
    if lang != "ru":
        return text
    return text.replace(",", NBSP).replace(".", ",")


def currency_symbol(currency: str) -> str:
    return SYMBOLS.get(currency.upper(), currency) if currency else ""


def money(value: float, currency: str = "", lang: str = "ru", decimals: int = 0) -> str:
    """`29663656, "RUB"` -> `29 663 656 ₽` (ru), `29,663,656 RUB` (en; `$1,234` for $, £, €)."""
    text = number(value, lang, decimals)
    if not currency:
        return text
    if lang == "ru":
        return f"{text}{NBSP}{currency_symbol(currency)}"
    symbol = currency_symbol(currency)
    return f"{symbol}{text}" if symbol in ("$", "£", "€") else f"{text} {currency}"


def share(value: float, lang: str = "ru", decimals: int = 1) -> str:
    """`0.123` -> `12,3 %` (ru) or `12.3%` (en)."""
    text = number(value * 100, lang, decimals)
    return f"{text}{NBSP}%" if lang == "ru" else f"{text}%"


def points(value: float, lang: str = "ru", decimals: int = 1) -> str:
    """A difference of shares in percentage points: `+1,2 п. п.` (ru), `+1.2 pp` (en)."""
    text = f"{value * 100:+.{decimals}f}"
    return f"{text.replace('.', ',')}{NBSP}п.{NBSP}п." if lang == "ru" else f"{text} pp"

def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
