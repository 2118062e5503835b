"""PHP-bracket query strings as amoCRM reads them: `filter[statuses][0][pipeline_id]=1`, `filter[id][]=5`.

Doc: kommo.com/developers/content/api_v4/api-filtration - single, multiple (`[]` or `[0]`) and range
(`[from]`/`[to]`) filters; `with=a,b`; `order[field]=asc|desc`; `page`, `limit`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from emulators.kit.forms import key_path


def parse_query(query: str) -> dict:
    """`a[b][]=1&a[b][]=2&c=3` -> {"a": {"b": ["1", "2"]}, "c": "3"}; numeric keys stay dict keys."""
    out: dict = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        parts = key_path(raw_key)
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_append = not last and parts[i + 1] == ""
            if last:
                if part == "":
                    continue  # handled by the parent's list
                node[part] = value
            elif nxt_append and i + 1 == len(parts) - 1:
                existing = node.get(part)
                if not isinstance(existing, list):
                    existing = [] if existing is None else [existing] if not isinstance(existing, dict) \
                        else list(existing.values())
                    node[part] = existing
                existing.append(value)
                break
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {} if child is None else {str(k): v for k, v in enumerate(
                        child if isinstance(child, list) else [child])}
                    node[part] = child
                node = child
    return out


def as_list(value: object) -> list[str]:
    """A multiple filter's values: `[]`-lists, `[0]`-dicts, a single value or a comma list."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return [str(v) for _, v in sorted(value.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)
                if not isinstance(v, dict)]
    return [v for v in str(value).split(",") if v != ""]


def as_ints(value: object) -> set[int] | None:
    values = as_list(value)
    if not values:
        return None
    out = set()
    for v in values:
        if not v.lstrip("-").isdigit():
            raise ValueError(v)
        out.add(int(v))
    return out


def as_range(value: object) -> tuple[int | None, int | None] | None:
    """`[from]`/`[to]` (inclusive), or a single timestamp meaning `from` (Doc: events filter)."""
    if value is None:
        return None
    if isinstance(value, dict):
        lo, hi = value.get("from"), value.get("to")
        return (int(lo) if lo not in (None, "") else None, int(hi) if hi not in (None, "") else None)
    return (int(value), None)


def in_range(number: int | None, bounds: tuple[int | None, int | None] | None) -> bool:
    if bounds is None:
        return True
    if number is None:
        return False
    lo, hi = bounds
    return (lo is None or number >= lo) and (hi is None or number <= hi)
