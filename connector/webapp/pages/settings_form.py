"""The playbook as form fields and back: steps' days, texts and channels, caps, quiet days, the hold-out.

A field's name is its key path as `repeat-sales playbook check` names it in its errors, with list indexes
as dotted parts (`rules.calendar.steps.1.day` for `rules.calendar.steps[1].day`: brackets in a form field's
name mean PHP nesting to the form parser), so an error lands next to its field. Values are read by the type the playbook holds
there; anything else stays untouched. Validation is the playbook's own (playbook_from_dict).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from connector.errors import PlaybookError
from playbooks.schema import playbook_from_dict

STEP_KEYS = ("day", "after_days", "days_before", "silence_days", "channel", "channels", "title", "body", "subject",
             "text")
GUARDS = ("guards.holdout.enabled", "guards.holdout.percent", "guards.cap.max_touches", "guards.cap.period_days",
          "guards.quiet.weekdays", "guards.quiet.dates")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Field:
    path: str
    key: str  # the last name (what the label says)
    value: Any


def split(path: str) -> list[str | int]:
    return [int(name or index) if (name or index).isdigit() else name for name, index in _PART.findall(path)]


def dotted(key_path: str) -> str:
    """`rules.calendar.steps[1].day` -> `rules.calendar.steps.1.day` (a form field's name)."""
    return ".".join(str(p) for p in split(key_path))


def get(data: dict, path: str):
    node: Any = data
    for part in split(path):
        node = node[part]
    return node


def put(data: dict, path: str, value) -> None:
    parts = split(path)
    node: Any = data
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def rule_fields(data: dict) -> dict[str, list[list[Field]]]:
    """Per rule, groups of editable fields: the rule's own keys, then each step or sub-table."""
    out: dict[str, list[list[Field]]] = {}
    for kind, cfg in (data.get("rules") or {}).items():
        if not isinstance(cfg, dict):
            continue
        groups: list[list[Field]] = []
        own = [Field(f"rules.{kind}.{k}", k, v) for k, v in cfg.items() if k in STEP_KEYS]
        if own:
            groups.append(own)
        for name, sub in cfg.items():
            items = [(f"rules.{kind}.{name}", sub)] if isinstance(sub, dict) else \
                [(f"rules.{kind}.{name}.{i}", s) for i, s in enumerate(sub)] if isinstance(sub, list) else []
            for path, table in items:
                if isinstance(table, dict):
                    group = [Field(f"{path}.{k}", k, v) for k, v in table.items() if k in STEP_KEYS]
                    if group:
                        groups.append(group)
        out[kind] = groups
    return out


def editable_paths(data: dict) -> list[str]:
    paths = [p for p in GUARDS if _exists(data, p)]
    for groups in rule_fields(data).values():
        paths += [f.path for group in groups for f in group]
    return paths


def _exists(data: dict, path: str) -> bool:
    try:
        get(data, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def apply_form(data: dict, form: dict, channels: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """A copy of `data` with the form's values; errors by field for values of the wrong type. `channels` maps
    the channel names people read ("письмо") back to the playbook's codes."""
    names = {k.lower(): v for k, v in (channels or {}).items()}
    edited = copy.deepcopy(data)
    errors: dict[str, str] = {}
    for path in editable_paths(data):
        old = get(data, path)
        if path == "guards.quiet.weekdays":
            raw = [d for d in WEEKDAYS if form.get(f"{path}.{d}") == "on"]
            put(edited, path, raw)
            continue
        if isinstance(old, bool):
            put(edited, path, form.get(path) == "on")
            continue
        given = form.get(path)
        if not isinstance(given, str):
            continue  # not on the form: unchanged
        given = given.strip()
        try:
            if isinstance(old, int):
                value: Any = int(given)
            elif isinstance(old, float):
                value = float(given.replace(",", "."))
            elif isinstance(old, list):
                value = [v.strip() for v in given.split(",") if v.strip()]
                if path.endswith(".channels"):
                    value = [names.get(v.lower(), v) for v in value]
            elif path.endswith(".channel"):
                value = names.get(given.lower(), given)
            else:
                value = given.replace("\r\n", "\n")
        except ValueError:
            errors[path] = "whole number expected" if isinstance(old, int) else "number expected"
            continue
        put(edited, path, value)
    return edited, errors


def validate(data: dict) -> tuple[object | None, dict[str, str]]:
    """The playbook, or the error by the field it belongs to (`playbook check`'s own message)."""
    try:
        return playbook_from_dict(data, source="settings"), {}
    except PlaybookError as exc:
        message = str(exc).split(f"{exc.key_path}: ", 1)[-1]
        return None, {field_of(dotted(exc.key_path), data): message}


def field_of(key_path: str, data: dict) -> str:
    """The form field an error's (dotted) key path belongs to: `guards.quiet.weekdays.1` -> `guards.quiet.weekdays`."""
    paths = set(editable_paths(data))
    path = key_path
    while path:
        if path in paths:
            return path
        cut = path.rfind(".")
        path = path[:cut] if cut > 0 else ""
    return key_path
