"""The method table: REST method name -> handler(portal, params) -> result.

A handler returns the `result` value, or a `Listing` when the answer also carries
`total` / `next`; it raises `ApiError` for documented failures.
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


def lookup(name: str) -> Callable | None:
    _load()
    return METHODS.get(name.strip().lower())


_LOADED = False


def _load() -> None:
    """Import the method modules once (they register themselves)."""
    global _LOADED
    if _LOADED:
        return
    from . import app_methods, catalog_methods, crm_methods, work_methods, writeback_methods  # noqa: F401

    app_methods.register()  # last: its app-context handlers replace work_methods' plain refusals
    _LOADED = True
