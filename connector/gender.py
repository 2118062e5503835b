"""The customer's gender as playbooks read it: `Customer.fields["gender"]` = "M" or "F".

CRMs keep it their own way (Bitrix24's HONORIFIC list, a user or custom field of the portal's
own making); adapters read the raw value and turn it into "M" / "F" here: the admin's value
mapping from settings first (`71=M,72=F`), then the usual words for Mr / Ms in Russian and English.
A value neither knows is no gender: a greeting is better skipped than sent to the wrong person.
"""

from __future__ import annotations

from collections.abc import Mapping

FIELD = "gender"
MALE, FEMALE = "M", "F"
WORDS = {
    **dict.fromkeys(("m", "male", "man", "mr", "mr.", "sir", "мужской", "муж", "муж.", "м", "мужчина", "г-н",
                     "г-н.", "господин"), MALE),
    **dict.fromkeys(("f", "female", "woman", "mrs", "mrs.", "ms", "ms.", "miss", "madam", "женский", "жен",
                     "жен.", "ж", "женщина", "г-жа", "г-жа.", "госпожа"), FEMALE),
}


def parse_values(text: str | None) -> dict[str, str]:
    """`71=M, 72=F, Муж=M` -> {"71": "M", ...}; a pair that is not `value=M|F` raises ValueError."""
    out: dict[str, str] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        value, sep, gender = pair.rpartition("=")
        gender = gender.strip().upper()
        if not sep or not value.strip() or gender not in (MALE, FEMALE):
            raise ValueError(f"expected value=M or value=F pairs separated by commas, got {pair.strip()!r}")
        out[value.strip().casefold()] = gender
    return out


def gender_of(value: object, values: Mapping[str, str] | None = None) -> str | None:
    """"M", "F" or None for one raw CRM value; `values` (from parse_values) wins over the usual words."""
    raw = "" if value is None else str(value).strip().casefold()
    if not raw:
        return None
    if values and raw in values:
        return values[raw]
    return WORDS.get(raw)
