"""Every playbook the settings page saved, in the state file: kept, listed, restorable.

A saved version is the whole playbook table (what `extends` and the file gave, merged, then edited) as
JSON; the newest one is the playbook in force for `serve` and `schedule` (Runtime), else PLAYBOOK's file.
Restoring copies an old version as the newest, so the history only grows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from connector.state import State
from connector.store import cards, engine
from playbooks.schema import BUNDLED, HERE, _parse, _read, playbook_from_dict
from playbooks.validation import deep_merge


def file_data(path: str | None, lang: str) -> dict[str, Any]:
    """The playbook file's table with its `extends` base merged in (what load_playbook validates)."""
    source = Path(path) if path else HERE / BUNDLED["default.en" if lang == "en" else "default"]
    data = _parse(_read(source), source.name)
    base = data.get("extends")
    if base in BUNDLED:
        data = deep_merge(_parse(_read(HERE / BUNDLED[base]), BUNDLED[base]),
                          {k: v for k, v in data.items() if k != "extends"})
    return data


def save(state: State, data: dict, *, user_id: str, user_name: str, note: str = "") -> int:
    return cards.save_version(state.db, user_id, user_name, note, json.dumps(data, ensure_ascii=False))


def listing(state: State, limit: int = 30) -> list[dict]:
    return cards.versions(state.db, limit)


def data_of(state: State, version: int) -> dict | None:
    text = cards.version_data(state.db, version)
    return json.loads(text) if text else None


def latest(state: State) -> tuple[int, dict] | None:
    found = cards.latest_version(state.db)
    return (found[0], json.loads(found[1])) if found else None


def newest_number(state_path) -> int:
    """The newest saved version's number, 0 when none: one cheap query, asked at each use of the playbook
    so that every process serving the state follows a save made in another."""
    if not engine.exists(state_path):
        return 0
    db = engine.connect(state_path, timeout=30)
    try:
        return cards.newest_version_number(db)
    except sqlite3.OperationalError:  # a state file of an older layout, not migrated yet: nothing saved
        return 0
    finally:
        db.close()


def latest_playbook(state_path) -> tuple[int, object] | None:
    """The newest saved playbook, validated, for the runtime; None when nothing was saved (or the state
    file does not exist yet)."""
    if not engine.exists(state_path):
        return None
    state = State(state_path)
    try:
        found = latest(state)
    finally:
        state.close()
    if found is None:
        return None
    return found[0], playbook_from_dict(found[1], source=f"saved version {found[0]}")
