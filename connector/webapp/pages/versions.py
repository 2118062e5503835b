"""Every playbook the settings page saved, in the state file: kept, listed, restorable.

A saved version is the whole playbook table (what `extends` and the file gave, merged, then edited) as
JSON; the newest one is the playbook in force for `serve` and `schedule` (Runtime), else PLAYBOOK's file.
Restoring copies an old version as the newest, so the history only grows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from connector.state import State, connect_private
from playbooks.schema import BUNDLED, HERE, _parse, _read, playbook_from_dict
from playbooks.validation import deep_merge

TABLE = """CREATE TABLE IF NOT EXISTS playbook_versions (id INTEGER PRIMARY KEY AUTOINCREMENT,
    saved_at REAL NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL, note TEXT NOT NULL, data TEXT NOT NULL)"""


def file_data(path: str | None, lang: str) -> dict[str, Any]:
    """The playbook file's table with its `extends` base merged in (what load_playbook validates)."""
    source = Path(path) if path else HERE / BUNDLED["default.en" if lang == "en" else "default"]
    data = _parse(_read(source), source.name)
    base = data.get("extends")
    if base in BUNDLED:
        data = deep_merge(_parse(_read(HERE / BUNDLED[base]), BUNDLED[base]),
                          {k: v for k, v in data.items() if k != "extends"})
    return data


def _ensure(state: State) -> None:
    with state.tx() as db:
        db.execute(TABLE)


def save(state: State, data: dict, *, user_id: str, user_name: str, note: str = "") -> int:
    _ensure(state)
    with state.tx() as db:
        cur = db.execute("INSERT INTO playbook_versions (saved_at, user_id, user_name, note, data) "
                         "VALUES (?, ?, ?, ?, ?)", (time.time(), user_id, user_name, note,
                                                    json.dumps(data, ensure_ascii=False)))
        return int(cur.lastrowid)


def listing(state: State, limit: int = 30) -> list[dict]:
    _ensure(state)
    rows = state.db.execute("SELECT id, saved_at, user_name, note FROM playbook_versions ORDER BY id DESC "
                            "LIMIT ?", (limit,))
    return [{"id": r[0], "saved_at": r[1], "user_name": r[2], "note": r[3]} for r in rows]


def data_of(state: State, version: int) -> dict | None:
    _ensure(state)
    row = state.db.execute("SELECT data FROM playbook_versions WHERE id=?", (version,)).fetchone()
    return json.loads(row[0]) if row else None


def latest(state: State) -> tuple[int, dict] | None:
    _ensure(state)
    row = state.db.execute("SELECT id, data FROM playbook_versions ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), json.loads(row[1])) if row else None


def newest_number(state_path) -> int:
    """The newest saved version's number, 0 when none: one cheap query, asked at each use of the playbook
    so that every process serving the state file follows a save made in another."""
    if not Path(state_path).exists():
        return 0
    db = connect_private(Path(state_path), timeout=30)
    try:
        row = db.execute("SELECT MAX(id) FROM playbook_versions").fetchone()
    except sqlite3.OperationalError:  # no version saved yet: the table is made at the first save
        return 0
    finally:
        db.close()
    return int(row[0] or 0)


def latest_playbook(state_path) -> tuple[int, object] | None:
    """The newest saved playbook, validated, for the runtime; None when nothing was saved (or the state
    file does not exist yet)."""
    if not Path(state_path).exists():
        return None
    state = State(state_path)
    try:
        found = latest(state)
    finally:
        state.close()
    if found is None:
        return None
    return found[0], playbook_from_dict(found[1], source=f"saved version {found[0]}")
