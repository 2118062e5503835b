"""Every REST method the portal answers: the method modules, loaded once, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

from . import (  # noqa: F401
    activity_methods,
    app_methods,
    catalog_methods,
    crm_methods,
    openlines,
    triggers,
    work_methods,
    writeback_methods,
)
from .registry import METHODS

app_methods.register()  # last: its app-context handlers replace work_methods' plain refusals
triggers.register()


def lookup(name: str) -> Callable | None:
    return METHODS.get(name.strip().lower())
