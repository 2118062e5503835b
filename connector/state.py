"""Local state (SQLite, or PostgreSQL): the history snapshot, sync cursors, the applied-action ledger, runs, lock.

The snapshot lets an incremental pull (only what changed) still evaluate every customer's whole
history. The ledger is what makes apply exactly-once: a key is `pending` from just before its
write until the CRM's answer (or its marker) proves it `done`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, fields, is_dataclass
from datetime import date
from pathlib import Path

from connector.crm import CrmRef, Cursor, PullPage
from connector.errors import StateLocked
from connector.model import Action, ActionKind, Channel, Customer, Product, Purchase
from connector.snapshot import Decoder, customer_to_json, lines_to_json, purchase_to_json
from connector.store import engine, ledger, migrations, snapshot
from connector.store.sqlite_file import (  # noqa: F401  (their home before connector/store)
    STATE_FILE_MODE,
    connect_private,
    create_private,
    state_failure,
)

LOCK_STALE_SECONDS = 6 * 3600
MAX_ATTEMPTS = 5  # a write the CRM refused this often is reported, not retried forever


_ACTION_FIELDS = tuple(f.name for f in fields(Action))


def _payload_value(value: object) -> object:
    """What json cannot write itself: a dataclass as its fields (as asdict would), anything else as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return dict(value) if isinstance(value, Mapping) else str(value)


def action_to_json(a: Action) -> str:
    """The ledger's copy of an action. Field by field, not asdict: asdict deep-copies every payload, a
    second of a 2,000-customer first sync's 7 s of CPU."""
    d = {name: getattr(a, name) for name in _ACTION_FIELDS}
    d["due"] = a.due.isoformat()
    d["kind"] = a.kind.value
    d["channel"] = a.channel.value
    d["payload"] = dict(a.payload)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"), default=_payload_value)


def action_from_json(text: str) -> Action:
    d = json.loads(text)
    d["due"] = date.fromisoformat(d["due"])
    d["kind"] = ActionKind(d["kind"])
    d["channel"] = Channel(d["channel"])
    return Action(**d)


class State:
    """The state (a SQLite file, or PostgreSQL); every method is a short transaction so a kill loses at most one step.

    Its SQL lives in connector/store/; `db` is the store's connection (engine-neutral `execute`).
    """

    def __init__(self, path: str | Path, *, writable: bool = True) -> None:
        """Open (or create, private) the state; a damaged, read-only or newer state is a StateError here.

        `path`: a file path, `sqlite:///path` or `postgresql://...`. `writable` checks at once that the
        file takes writes, so a read-only file stops a run before it pulls anything (a report only reads).
        """
        self.pg = engine.is_postgres(path)
        self.path = path if self.pg else engine.sqlite_path(path)
        self.db = engine.connect(self.path, timeout=30)
        try:
            migrations.prepare(self.db, writable=writable)
        except sqlite3.Error as exc:
            self.db.close()
            raise state_failure(self.path, exc) from None
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[engine.Db]:
        with self.db.tx() as db:
            yield db

    # --- run lock ------------------------------------------------------------------------

    @contextmanager
    def lock(self, name: str = "sync", *, now: float | None = None) -> Iterator[None]:
        """One run at a time per state. SQLite: a lock row, taken over when older than LOCK_STALE_SECONDS
        or when its holder's process on this host is gone. PostgreSQL: an advisory lock held by this
        connection, so it works across machines and a killed holder's lock ends with its session."""
        holder = engine.process_holder()
        now = time.time() if now is None else now
        if self.pg:
            if not self.db.try_session_lock(f"run:{name}"):
                found = ledger.lock_holder(self.db, name)
                raise StateLocked(f"another run holds the {name} lock ({found[0] if found else 'another machine'})",
                                  hint="wait for it to finish; a killed run's lock frees itself")
            ledger.hold(self.db, name, holder, now)  # who holds it, for the message above
            try:
                yield
            finally:
                ledger.release(self.db, name, holder)
                self.db.session_unlock(f"run:{name}")
            return
        with self.tx() as db:
            row = ledger.lock_holder(db, name)
            if row and now - row[1] < LOCK_STALE_SECONDS and not self._holder_dead(row[0]):
                raise StateLocked(f"another run holds the {name} lock ({row[0]})",
                                  hint="wait for it to finish; a killed run's lock frees itself")
            ledger.hold(db, name, holder, now)
        try:
            yield
        finally:
            ledger.release(self.db, name, holder)

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
        value = snapshot.cursor(self.db, account)
        return Cursor(value) if value is not None else None

    def save_cursor(self, account: str, cursor: Cursor) -> None:
        snapshot.save_cursor(self.db, account, cursor.modified_since)

    # --- an interrupted pull ---------------------------------------------------------------

    def pull_position(self, account: str) -> dict | None:
        """Where the account's last pull stopped before its end (None: it ended, or never stopped)."""
        return self._meta_json(f"pull_position:{account}")

    def _meta_json(self, key: str) -> dict | None:
        """A JSON value kept in the state's meta; None when missing or unreadable (then it is redone)."""
        value = snapshot.meta(self.db, key)
        try:
            return json.loads(value) if value else None
        except ValueError:
            return None

    def save_pull_position(self, account: str, position: dict | None) -> None:
        snapshot.save_meta(self.db, f"pull_position:{account}",
                           None if position is None else json.dumps(position, ensure_ascii=False))

    # --- what the last complete run planned from (connector.quiet) ----------------------------

    def settled(self, account: str) -> dict | None:
        """The cursor, day and playbook of the last run that planned and wrote everything, while nothing
        has moved the snapshot since; None otherwise."""
        return self._meta_json(f"settled:{account}")

    def settle(self, account: str, mark: dict | None) -> None:
        snapshot.save_meta(self.db, f"settled:{account}", None if mark is None else json.dumps(mark, sort_keys=True))

    def stored(self, account: str, customer_ids: Iterable[str], purchase_ids: Iterable[str]) -> tuple[dict, dict]:
        """The snapshot's JSON of these customers and of these purchases, by id (those it holds)."""
        return (snapshot.rows_by_id(self.db, "customers", account, customer_ids),
                snapshot.rows_by_id(self.db, "purchases", account, purchase_ids))

    # --- snapshot --------------------------------------------------------------------------

    def absorb(self, account: str, page: PullPage, run_id: int) -> None:
        self.settle(account, None)  # the snapshot moves: what the last complete run planned from is gone
        snapshot.absorb(self.db, account, [(c.id, customer_to_json(c)) for c in page.customers],
                        [(p.id, p.customer_id, purchase_to_json(p)) for p in page.purchases],
                        [(p.id, json.dumps(asdict(p), ensure_ascii=False)) for p in page.products],
                        page.removed_purchase_ids, run_id,
                        lines_to_json({p.id: p for p in page.purchases}.values()))  # the last of a repeat, as stored

    def drop_unseen_purchases(self, account: str, run_id: int) -> int:
        """After a full pull: purchases the CRM no longer holds leave the snapshot."""
        return snapshot.drop_unseen_purchases(self.db, account, run_id)

    def customers(self, account: str, ids: Iterable[str] | None = None, *, lean: bool = False) -> Iterator[Customer]:
        """Stream customers that have purchases (all, or just `ids`), each with its purchases in date order.

        Purchases come ordered by customer and meet the customers table read in the same order, so
        a card is decoded once; equal values (line items, days, names) are shared (`Decoder`).
        `lean`: a purchase with line items comes without its title (the playbooks name a purchase by
        its items and fall back to the title only when it has none): ~100 MB less for 1M deals.
        """
        decoder = Decoder(lean=lean)
        wanted = None if ids is None else sorted(set(ids))
        for cards, rows in snapshot.cards_and_purchases(self.db, account, wanted):
            yield from self._merge(cards, rows, decoder)

    def prospect_count(self, account: str) -> int:
        """Customers in the snapshot without any purchase (contacts who never bought): `customers()` skips them."""
        return snapshot.prospect_count(self.db, account)

    def prospects(self, account: str, created_since: date) -> Iterator[Customer]:
        """Contacts without any purchase created on or after `created_since` (a welcome series' audience)."""
        decoder = Decoder()
        for data in snapshot.prospects(self.db, account, created_since.isoformat()):
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
        return {p.id: p for p in (Product(**json.loads(r)) for r in snapshot.product_rows(self.db, account))}

    def counts(self, account: str) -> dict[str, int]:
        return snapshot.counts(self.db, account)

    # --- ledger ----------------------------------------------------------------------------

    def ledger_status(self, account: str, keys: Iterable[str]) -> dict[str, str]:
        return ledger.status(self.db, account, keys)

    def unfinished(self, account: str) -> list[tuple[Action, str]]:
        """Actions left pending (fate unknown) or failed by earlier runs, with their status."""
        return [(action_from_json(a), s) for a, s in ledger.unfinished(self.db, account, MAX_ATTEMPTS)]

    def mark_pending(self, account: str, actions: Iterable[Action]) -> None:
        ledger.mark_pending(self.db, account, [(a.key, a.kind.value, a.customer_id, a.rule, action_to_json(a))
                                               for a in actions])

    def mark_done(self, account: str, done: dict[str, CrmRef], today: date) -> None:
        ledger.mark_done(self.db, account, {k: (r.kind, r.id) for k, r in done.items()}, today.isoformat())

    def mark_failed(self, account: str, failed: dict[str, str]) -> None:
        ledger.mark_failed(self.db, account, failed)

    def give_up(self, account: str, reasons: dict[str, str]) -> None:
        """Never retry these keys again (a greeting whose date has passed); the reason stays for reports."""
        ledger.mark_failed(self.db, account, reasons, attempts=MAX_ATTEMPTS)

    def record_found(self, account: str, found: dict[str, CrmRef], today: date) -> None:
        """Rebuild ledger rows from markers found in the CRM (a lost or older ledger)."""
        ledger.record_found(self.db, account, {k: (r.kind, r.id) for k, r in found.items()}, today.isoformat())

    def done_refs(self, account: str, crm_kinds: Iterable[str]) -> dict[str, CrmRef]:
        """Done keys whose CRM object is of one of these kinds, with where it lives."""
        return {k: CrmRef(kind, crm_id or "") for k, kind, crm_id in ledger.done_refs(self.db, account, list(crm_kinds))}

    def applied_dates(self, account: str) -> dict[str, date]:
        return {k: date.fromisoformat(d) for k, d in ledger.applied_dates(self.db, account)}

    def ledger_counts(self, account: str) -> dict[str, int]:
        return ledger.counts(self.db, account)

    # --- runs ------------------------------------------------------------------------------

    def start_run(self, account: str, kind: str, dry_run: bool) -> int:
        return ledger.start_run(self.db, account, kind, dry_run)

    def finish_run(self, run_id: int, stats: dict, error: str | None = None) -> None:
        ledger.finish_run(self.db, run_id, stats, error)

    def last_runs(self, limit: int = 20) -> list[dict]:
        return ledger.last_runs(self.db, limit)
