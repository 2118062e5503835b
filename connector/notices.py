"""Rules that cannot fire with this CRM's data, said in the run summary instead of staying silent.

A playbook step may match card fields (the holidays' `fields = {gender = "F"}`); when no customer
in the snapshot has such a field at all, the step can never fire. Which steps need which fields
comes from the playbook itself, so a new rule or step with `fields` is covered without code here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import is_dataclass

from connector.state import State
from connector.store import snapshot

MESSAGES = {
    "ru": ("Правило {rule} ({step}) не сработает: ни у одного клиента нет поля «{field}». ",
           "Заполните его в карточках клиентов или укажите, откуда его брать, в настройке {setting} "
           "(см. settings.example.env).",
           "Заполните это поле в карточках клиентов."),
    "en": ("Rule {rule} ({step}) cannot run: no customer has the field \"{field}\". ",
           "Fill it on the customers' cards or name its source in the setting {setting} "
           "(see settings.example.env).",
           "Fill this field on the customers' cards."),
}


def field_conditions(playbook) -> Iterator[tuple[str, str, str]]:
    """(rule, step, field) for every card field an enabled rule's step must match."""
    for kind in sorted(playbook.rules):
        cfg = playbook.rule(kind)
        if cfg is not None:
            for step, name in _conditions(cfg, ""):
                yield kind, step, name


def _conditions(node, step: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, list | tuple):
        for item in node:
            yield from _conditions(item, step)
        return
    if not is_dataclass(node):
        return
    step = str(getattr(node, "name", "") or step)
    wanted = getattr(node, "fields", None)
    if isinstance(wanted, Mapping):
        for name in wanted:
            yield step, str(name)
    for f in dataclass_fields(node):
        if f.name != "fields":
            yield from _conditions(getattr(node, f.name), step)


def has_field(state: State, account: str, name: str) -> bool:
    """Whether any customer in the snapshot carries card field `name` (the scan stops at the first one)."""
    return snapshot.has_card_field(state.db, account, name)


def rules_cannot_run(state: State, account: str, playbook, adapter) -> list[dict]:
    """Steps whose card-field condition no customer can meet, each with the setting that would fix it."""
    lead, with_setting, without = MESSAGES.get(getattr(playbook, "lang", "ru"), MESSAGES["ru"])
    present: dict[str, bool] = {}
    out = []
    for rule, step, name in field_conditions(playbook):
        if name not in present:
            present[name] = has_field(state, account, name)
        if present[name]:
            continue
        setting = adapter.field_setting(name)
        fix = with_setting.format(setting=setting) if setting else without
        out.append({"rule": rule, "step": step, "field": name, "setting": setting,
                    "message": lead.format(rule=rule, step=step, field=name) + fix})
    return out


def crm_notices(playbook, adapter) -> list[dict]:
    """What the adapter learnt about the account that the run summary should say (amoCRM's Customers
    mode, a token without the rights some reads need), in the playbook's language."""
    return [{"message": m} for m in adapter.account_notices(getattr(playbook, "lang", "ru"))]
