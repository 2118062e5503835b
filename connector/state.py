"""Local state in SQLite: the history snapshot, sync cursors, the applied-action ledger, runs, lock.

The snapshot lets an incremental pull (only what changed) still evaluate every customer's whole
history. The ledger is what makes apply exactly-once: a key is `pending` from just before its
write until the CRM's answer (or its marker) proves it `done`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date
from pathlib import Path

from connector.crm import CrmRef, Cursor, PullPage
from connector.errors import StateDamaged, StateError, StateLocked, StateReadOnly, StateSchemaError
from connector.model import Action, ActionKind, Channel, Customer, Product, Purchase
from connector.snapshot import Decoder, customer_to_json, purchase_to_json

SCHEMA_VERSION = 1
STATE_FILE_MODE = 0o600  # the file holds CRM tokens; SQLite gives its -wal/-shm/-journal files the same mode
LOCK_STALE_SECONDS = 6 * 3600
OPEN_ATTEMPTS = 20  # tries to set up a state file another thread or process is creating right now
OPEN_RETRY_SECONDS = 0.02
MAX_ATTEMPTS = 5  # a write the CRM refused this often is reported, not retried forever

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (account TEXT PRIMARY KEY, value TEXT NOT NULL, saved_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS customers (account TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, id));
CREATE TABLE IF NOT EXISTS purchases (account TEXT NOT NULL, id TEXT NOT NULL, customer_id TEXT NOT NULL,
    data TEXT NOT NULL, seen_run INTEGER, PRIMARY KEY (account, id));
CREATE INDEX IF NOT EXISTS purchases_by_customer ON purchases (account, customer_id);
CREATE TABLE IF NOT EXISTS products (account TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, id));
CREATE TABLE IF NOT EXISTS ledger (account TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL,
    kind TEXT NOT NULL, customer_id TEXT NOT NULL, rule TEXT NOT NULL, action TEXT NOT NULL,
    crm_kind TEXT, crm_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT,
    updated_at REAL NOT NULL, applied_on TEXT, PRIMARY KEY (account, key));
CREATE INDEX IF NOT EXISTS ledger_by_status ON ledger (account, status);
CREATE INDEX IF NOT EXISTS ledger_by_customer ON ledger (account, customer_id);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, kind TEXT,
    started REAL NOT NULL, finished REAL, dry_run INTEGER, stats TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired REAL NOT NULL);
"""


def action_to_json(a: Action) -> str:
    d = asdict(a)
    d["due"] = a.due.isoformat()
    d["kind"] = a.kind.value
    d["channel"] = a.channel.value
    d["payload"] = dict(a.payload)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"), default=str)


def action_from_json(text: str) -> Action:
    d = json.loads(text)
    d["due"] = date.fromisoformat(d["due"])
    d["kind"] = ActionKind(d["kind"])
    d["channel"] = Channel(d["channel"])
    return Action(**d)


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


class State:
    """One SQLite file; every method is a short transaction so a kill loses at most one step."""

    def __init__(self, path: str | Path, *, writable: bool = True) -> None:
        """Open (or create, private) the state file; a damaged or read-only file is a StateError here.

        `writable` checks at once that the file takes writes, so a read-only file stops a run before
        it pulls anything (a report only reads and skips the check).
        """
        self.path = Path(path)
        self.db = connect_private(self.path, timeout=30)
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                row = self._prepare(writable)
                break
            except sqlite3.OperationalError as exc:
                # a new file being set up by another thread or process at this moment: switching it to
                # WAL answers "locked" without waiting, so wait a little and look again
                if "locked" in str(exc) and attempt < OPEN_ATTEMPTS:
                    time.sleep(OPEN_RETRY_SECONDS * attempt)
                    continue
                self.db.close()
                raise state_failure(self.path, exc) from None
            except sqlite3.Error as exc:
                self.db.close()
                raise state_failure(self.path, exc) from None
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            self.db.close()
            raise StateSchemaError(f"state file {self.path} has schema {row[0]}, this version needs "
                                   f"{SCHEMA_VERSION}", hint="use a new STATE_URL or the matching version")

    def _prepare(self, writable: bool) -> tuple | None:
        """WAL, the schema, its version row; a writable file proves it takes writes. Returns the version row."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if row is None:  # a new file; another thread or process may be creating it at the same moment
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return self.db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if writable:
            self.db.execute("BEGIN")  # a write that changes nothing: SQLite refuses it on a read-only file
            self.db.execute("UPDATE meta SET value=value WHERE name='schema'")
            self.db.execute("ROLLBACK")
        return row

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- run lock ------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str = "sync", *, now: float | None = None) -> Iterator[None]:
        """One run at a time per state file; a lock older than LOCK_STALE_SECONDS is taken over."""
        holder = f"{socket.gethostname()}:{os.getpid()}"
        now = time.time() if now is None else now
        with self.tx() as db:
            row = db.execute("SELECT holder, acquired FROM locks WHERE name=?", (name,)).fetchone()
            if row and now - row[1] < LOCK_STALE_SECONDS and not self._holder_dead(row[0]):
                raise StateLocked(f"another run holds the {name} lock ({row[0]})",
                                  hint="wait for it to finish; a killed run's lock frees itself")
            db.execute("INSERT OR REPLACE INTO locks VALUES (?, ?, ?)", (name, holder, now))
        try:
            yield
        finally:
            self.db.execute("DELETE FROM locks WHERE name=? AND holder=?", (name, holder))

    @staticmethod
    def _holder_dead(holder: str) -> bool:
        host, _, pid = holder.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    # --- cursors ---------------------------------------------------------------------------

    def cursor(self, account: str) -> Cursor | None:
        row = self.db.execute("SELECT value FROM cursors WHERE account=?", (account,)).fetchone()
        return Cursor(row[0]) if row else None

    def save_cursor(self, account: str, cursor: Cursor) -> None:
        self.db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                        (account, cursor.modified_since, time.time()))

    # --- an interrupted pull ---------------------------------------------------------------

    def pull_position(self, account: str) -> dict | None:
        """Where the account's last pull stopped before its end (None: it ended, or never stopped)."""
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (f"pull_position:{account}",)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except ValueError:
            return None

    def save_pull_position(self, account: str, position: dict | None) -> None:
        if position is None:
            self.db.execute("DELETE FROM meta WHERE name=?", (f"pull_position:{account}",))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            (f"pull_position:{account}", json.dumps(position, ensure_ascii=False)))

    # --- snapshot --------------------------------------------------------------------------

    def absorb(self, account: str, page: PullPage, run_id: int) -> None:
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO customers VALUES (?, ?, ?)",
                           [(account, c.id, customer_to_json(c)) for c in page.customers])
            db.executemany("INSERT OR REPLACE INTO purchases VALUES (?, ?, ?, ?, ?)",
                           [(account, p.id, p.customer_id, purchase_to_json(p), run_id)
                            for p in page.purchases])
            db.executemany("INSERT OR REPLACE INTO products VALUES (?, ?, ?)",
                           [(account, p.id, json.dumps(asdict(p), ensure_ascii=False))
                            for p in page.products])
            db.executemany("DELETE FROM purchases WHERE account=? AND id=?",
                           [(account, i) for i in page.removed_purchase_ids])

    def drop_unseen_purchases(self, account: str, run_id: int) -> int:
        """After a full pull: purchases the CRM no longer holds leave the snapshot."""
        cur = self.db.execute("DELETE FROM purchases WHERE account=? AND (seen_run IS NULL OR seen_run<>?)",
                              (account, run_id))
        return cur.rowcount

    def customers(self, account: str, ids: Iterable[str] | None = None, *, lean: bool = False) -> Iterator[Customer]:
        """Stream customers that have purchases (all, or just `ids`), each with its purchases in date order.

        Purchases come ordered by customer and meet the customers table read in the same order, so
        a card is decoded once; equal values (line items, days, names) are shared (`Decoder`).
        `lean`: a purchase with line items comes without its title (the playbooks name a purchase by
        its items and fall back to the title only when it has none): ~100 MB less for 1M deals.
        """
        decoder = Decoder(lean=lean)
        if ids is None:
            yield from self._merge(
                self.db.execute("SELECT id, data FROM customers WHERE account=? ORDER BY id", (account,)),
                self.db.execute("SELECT customer_id, data FROM purchases WHERE account=? ORDER BY customer_id",
                                (account,)), decoder)
            return
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._merge(
                self.db.execute(f"SELECT id, data FROM customers WHERE account=? AND id IN ({marks}) ORDER BY id",
                                (account, *chunk)),
                self.db.execute(f"SELECT customer_id, data FROM purchases WHERE account=? AND customer_id IN "
                                f"({marks}) ORDER BY customer_id", (account, *chunk)), decoder)

    def prospect_count(self, account: str) -> int:
        """Customers in the snapshot without any purchase (contacts who never bought): `customers()` skips them."""
        row = self.db.execute("SELECT COUNT(*) FROM customers c WHERE c.account=? AND NOT EXISTS (SELECT 1 FROM "
                              "purchases p WHERE p.account=c.account AND p.customer_id=c.id)", (account,)).fetchone()
        return int(row[0])

    def prospects(self, account: str, created_since: date) -> Iterator[Customer]:
        """Contacts without any purchase created on or after `created_since` (a welcome series' audience)."""
        decoder = Decoder()
        rows = self.db.execute("SELECT data FROM customers c WHERE c.account=? AND json_extract(c.data, '$.created')>=? "
                               "AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.account=c.account AND "
                               "p.customer_id=c.id) ORDER BY c.id", (account, created_since.isoformat()))
        for (data,) in rows:
            yield decoder.customer(data, ())

    def _merge(self, cards: Iterator, rows: Iterator, decoder: Decoder) -> Iterator[Customer]:
        card = next(cards, None)
        current, cdata, bucket = None, None, []
        for customer_id, pdata in rows:
            if customer_id != current:
                if current is not None:
                    yield self._customer(current, cdata, bucket, decoder)
                while card is not None and card[0] < customer_id:
                    card = next(cards, None)
                cdata = card[1] if card is not None and card[0] == customer_id else None
                current, bucket = customer_id, []
            bucket.append(decoder.purchase(pdata, current))
        if current is not None:
            yield self._customer(current, cdata, bucket, decoder)

    @staticmethod
    def _customer(customer_id: str, cdata: str | None, purchases: list[Purchase], decoder: Decoder) -> Customer:
        purchases.sort(key=lambda p: (p.date, p.id))
        if cdata is None:  # a deal whose contact was not pulled (deleted, or no rights): keep the history
            return Customer(id=customer_id, purchases=tuple(purchases))
        return decoder.customer(cdata, tuple(purchases))

    def products(self, account: str) -> dict[str, Product]:
        rows = self.db.execute("SELECT data FROM products WHERE account=?", (account,))
        return {p.id: p for p in (Product(**json.loads(r[0])) for r in rows)}

    def counts(self, account: str) -> dict[str, int]:
        q = "SELECT COUNT(*) FROM {} WHERE account=?"
        return {t: self.db.execute(q.format(t), (account,)).fetchone()[0]
                for t in ("customers", "purchases", "products")}

    # --- ledger ----------------------------------------------------------------------------

    def ledger_status(self, account: str, keys: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, status FROM ledger WHERE account=? AND key IN ({','.join('?' * len(chunk))})"
            out.update(dict(self.db.execute(q, (account, *chunk))))
        return out

    def unfinished(self, account: str) -> list[tuple[Action, str]]:
        """Actions left pending (fate unknown) or failed by earlier runs, with their status."""
        rows = self.db.execute("SELECT action, status FROM ledger WHERE account=? AND status IN "
                               "('pending', 'failed') AND attempts < ? AND action <> '{}' ORDER BY key",
                               (account, MAX_ATTEMPTS))
        return [(action_from_json(a), s) for a, s in rows]

    def mark_pending(self, account: str, actions: Iterable[Action]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT INTO ledger (account, key, status, kind, customer_id, rule, action, attempts, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, 1, ?) ON CONFLICT(account, key) DO UPDATE SET "
                "status='pending', attempts=attempts+1, updated_at=excluded.updated_at",
                [(account, a.key, a.kind.value, a.customer_id, a.rule, action_to_json(a), now) for a in actions])

    def mark_done(self, account: str, done: dict[str, CrmRef], today: date) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany("UPDATE ledger SET status='done', crm_kind=?, crm_id=?, reason=NULL, updated_at=?, "
                           "applied_on=COALESCE(applied_on, ?) WHERE account=? AND key=?",
                           [(r.kind, r.id, now, today.isoformat(), account, k) for k, r in done.items()])

    def mark_failed(self, account: str, failed: dict[str, str]) -> None:
        now = time.time()
        with self.tx() as db:
            db.executemany("UPDATE ledger SET status='failed', reason=?, updated_at=? WHERE account=? AND key=?",
                           [(reason[:500], now, account, k) for k, reason in failed.items()])

    def give_up(self, account: str, reasons: dict[str, str]) -> None:
        """Never retry these keys again (a greeting whose date has passed); the reason stays for reports."""
        now = time.time()
        with self.tx() as db:
            db.executemany("UPDATE ledger SET status='failed', reason=?, attempts=?, updated_at=? "
                           "WHERE account=? AND key=?",
                           [(reason[:500], MAX_ATTEMPTS, now, account, k) for k, reason in reasons.items()])

    def record_found(self, account: str, found: dict[str, CrmRef], today: date) -> None:
        """Rebuild ledger rows from markers found in the CRM (a lost or older ledger)."""
        now = time.time()
        with self.tx() as db:
            db.executemany(
                "INSERT INTO ledger (account, key, status, kind, customer_id, rule, action, crm_kind, crm_id, "
                "updated_at, applied_on) VALUES (?, ?, 'done', ?, '', '', '{}', ?, ?, ?, ?) "
                "ON CONFLICT(account, key) DO UPDATE SET status='done', crm_kind=excluded.crm_kind, "
                "crm_id=excluded.crm_id, updated_at=excluded.updated_at, "
                "applied_on=COALESCE(ledger.applied_on, excluded.applied_on)",
                [(account, k, r.kind, r.kind, r.id, now, today.isoformat()) for k, r in found.items()])

    def done_refs(self, account: str, crm_kinds: Iterable[str]) -> dict[str, CrmRef]:
        """Done keys whose CRM object is of one of these kinds, with where it lives."""
        kinds = list(crm_kinds)
        rows = self.db.execute(f"SELECT key, crm_kind, crm_id FROM ledger WHERE account=? AND status='done' AND "
                               f"crm_kind IN ({','.join('?' * len(kinds))})", (account, *kinds))
        return {k: CrmRef(kind, crm_id or "") for k, kind, crm_id in rows}

    def applied_dates(self, account: str) -> dict[str, date]:
        rows = self.db.execute("SELECT key, applied_on FROM ledger WHERE account=? AND status='done' "
                               "AND applied_on IS NOT NULL", (account,))
        return {k: date.fromisoformat(d) for k, d in rows}

    def ledger_counts(self, account: str) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM ledger WHERE account=? GROUP BY status", (account,))
        return dict(rows)

    # --- runs ------------------------------------------------------------------------------

    def start_run(self, account: str, kind: str, dry_run: bool) -> int:
        cur = self.db.execute("INSERT INTO runs (account, kind, started, dry_run) VALUES (?, ?, ?, ?)",
                              (account, kind, time.time(), int(dry_run)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, stats: dict, error: str | None = None) -> None:
        self.db.execute("UPDATE runs SET finished=?, stats=?, error=? WHERE id=?",
                        (time.time(), json.dumps(stats, default=str), error, run_id))

    def last_runs(self, limit: int = 20) -> list[dict]:
        rows = self.db.execute("SELECT id, account, kind, started, finished, dry_run, stats, error FROM runs "
                               "ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r[0], "account": r[1], "kind": r[2], "started": r[3], "finished": r[4],
                 "dry_run": bool(r[5]), "stats": json.loads(r[6]) if r[6] else None, "error": r[7]}
                for r in rows]
