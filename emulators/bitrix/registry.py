"""The method table: REST method name -> handler(portal, params) -> result.

A handler returns the `result` value, or a `Listing` when the answer also carries
`total` / `next`; it raises `ApiError` for documented failures. The method modules register
themselves here with `@method`; `methods.lookup` loads them all (this module imports none, so
the method modules and the table never import each other).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

METHODS: dict[str, Callable] = {}


@dataclass(slots=True)
class Listing:
    result: object
    total: int | None = None
    next: int | None = None


def method(*names: str) -> Callable:
    def register(func: Callable) -> Callable:
        for name in names:
            METHODS[name.lower()] = func
        return func
    return register
