"""The SQLite state file: created readable by its owner only, and its errors as what to do about them."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from connector.errors import StateDamaged, StateError, StateReadOnly

STATE_FILE_MODE = 0o600  # the file holds CRM tokens; SQLite gives its -wal/-shm/-journal files the same mode


def create_private(path: Path) -> None:
    """Create the state file (and its folder) readable by its owner only, unless it exists already."""
    if path.parent and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the folder of the state file {path}: {exc.strerror or exc}",
                             hint="create it, or point STATE_URL at a writable path") from None
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STATE_FILE_MODE))
    except FileExistsError:
        _owner_only(path)
    except OSError as exc:
        raise StateError(f"cannot create the state file {path}: {exc.strerror or exc}",
                         hint="make its folder writable for the user running repeat-sales, or point "
                              "STATE_URL at a writable path") from None


def _owner_only(path: Path) -> None:
    """A state file made world-readable before files were created private loses the bits for others.

    Tokens live there. A group the admin shares it with keeps its access, and an owner's read-only
    file stays read-only, so its error still says so.
    """
    try:
        st = path.stat()
        if st.st_mode & 0o007 and st.st_uid == os.getuid():
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o770)
    except OSError:
        pass  # not ours to change: opening it says what is wrong, if anything


def connect_private(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A connection to the state file, created private first (see `create_private`)."""
    create_private(path)
    try:
        return sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise state_failure(path, exc) from None


def state_failure(path: Path | str | None, exc: sqlite3.Error) -> StateError:
    """A SQLite error on the state file, as what happened and what to do about it (one line).

    `path` None: the failure surfaced where the file's name is not known (the CLI's last resort).
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    where = f"the state file {path}" if path else "the state file (STATE_URL)"
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StateReadOnly(f"{where} is read-only",
                             hint="make the file and its folder writable for the user running repeat-sales, "
                                  "or point STATE_URL at a writable path")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
        move = f"mv {path} {path}.damaged" if path else "rename the file STATE_URL names"
        return StateDamaged(f"{where} is damaged: {text}",
                            hint=f"move it aside: {move}, then run `repeat-sales sync`; the ledger is rebuilt from "
                                 "the markers in the CRM (an app install or OAuth grant kept there must be redone)")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StateError(f"{where} is busy: {text}", hint="another process holds it too long; try again")
    if name.startswith("SQLITE_FULL"):
        return StateError(f"the disk of {where} is full", hint="free some space and run again")
    if name.startswith("SQLITE_CANTOPEN"):
        return StateError(f"cannot open {where}: {text}",
                          hint="check that STATE_URL names a file in a folder that exists and is writable")
    return StateError(f"{where} failed: {text}", hint="check the file and its folder (STATE_URL)")
