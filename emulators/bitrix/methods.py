"""Every REST method the portal answers: the method modules, loaded once, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

from . import app_methods, catalog_methods, crm_methods, work_methods, writeback_methods  # noqa: F401
from .registry import METHODS

app_methods.register()  # last: its app-context handlers replace work_methods' plain refusals


def lookup(name: str) -> Callable | None:
    return METHODS.get(name.strip().lower())
