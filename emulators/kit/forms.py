"""PHP-bracket forms, as both CRMs write and read them: `a[b][0]=x` <-> {"a": {"b": ["x"]}}."""

from __future__ import annotations

import functools
import re

_BRACKETS = re.compile(r"\[([^\]]*)\]")


@functools.lru_cache(maxsize=8192)  # keys repeat: `ID[]` a thousand times in one filter
def key_path(raw_key: str) -> tuple[str, ...]:
    """`a[b][]` -> ("a", "b", ""): the steps of one form key ("" is PHP's append)."""
    head, _, rest = raw_key.partition("[")
    return (head, *_BRACKETS.findall("[" + rest)) if rest else (head,)


def php_pairs(value: object, prefix: str = "", *, yes: str = "1", no: str = "0") -> list[tuple[str, str]]:
    """Nested dicts and lists as flat `key[sub][0]` pairs (None left out; booleans as `yes`/`no`)."""
    pairs: list[tuple[str, str]] = []

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif node is not None:
            pairs.append((key, yes if node is True else no if node is False else str(node)))

    walk(value, prefix)
    return pairs
