"""Queries on the history snapshot: customers, purchases, products, sync cursors, pull positions."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator

from connector.store.engine import DDL, Db, data_field

CHUNK = 500  # ids per IN (...) list


def chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def marks(items: list) -> str:
    return ",".join("?" * len(items))


# --- cursors and meta ---------------------------------------------------------------------------

def cursor(db: Db, account: str) -> str | None:
    row = db.execute("SELECT value FROM cursors WHERE account=?", (account,)).fetchone()
    return row[0] if row else None


def save_cursor(db: Db, account: str, value: str) -> None:
    db.execute("INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(account) DO UPDATE SET value=excluded.value, "
               "saved_at=excluded.saved_at", (account, value, time.time()))


def meta(db: Db, name: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
    return row[0] if row else None


def save_meta(db: Db, name: str, value: str | None) -> None:
    if value is None:
        db.execute("DELETE FROM meta WHERE name=?", (name,))
    else:
        db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                   (name, value))


# --- absorbing a page -------------------------------------------------------------------------

def absorb(db: Db, account: str, customers: list[tuple[str, str]], purchases: list[tuple[str, str, str]],
           products: list[tuple[str, str]], removed: Iterable[str], run_id: int,
           lines: list[tuple[str, int, str]] | None = None) -> None:
    """One pulled page in one transaction: (id, json) customers and products, (id, customer, json) purchases,
    the purchases' (id, place, JSON text) line items (None: taken from the purchases' JSON)."""
    with db.tx():
        db.executemany("INSERT INTO customers VALUES (?, ?, ?) ON CONFLICT(account, id) DO UPDATE SET "
                       "data=excluded.data", [(account, i, d) for i, d in customers])
        db.executemany(purchase_upsert(db), [(account, i, c, d, run_id) for i, c, d in purchases])
        db.executemany("INSERT INTO products VALUES (?, ?, ?) ON CONFLICT(account, id) DO UPDATE SET "
                       "data=excluded.data", [(account, i, d) for i, d in products])
        removed = [(account, i) for i in removed]
        db.executemany("DELETE FROM purchases WHERE account=? AND id=?", removed)
        db.executemany("DELETE FROM purchase_lines WHERE account=? AND purchase_id=?",
                       [(account, i) for i, _c, _d in purchases] + removed)
        if lines is None:  # a purchase listed twice keeps its last JSON, as the upsert does
            lines = [(i, place, text) for i, d in {i: d for i, _c, d in purchases}.items()
                     for place, text in enumerate(line_texts_of(d))]
        gone = {i for _a, i in removed}  # a page that both lists and removes a purchase leaves no line of it
        add_lines(db, [(account, i, place, text) for i, place, text in lines if i not in gone])


def add_lines(db: Db, lines: list[tuple[str, str, int, str]]) -> None:
    """purchase_lines of (account, purchase id, place, line JSON text) rows, each naming its text in
    line_texts by a 64-bit hash of it (no lookup per line: a shop's lines mostly repeat, each text is kept once)."""
    numbers: dict[str, int] = {}
    rows, texts = [], {}
    for account, pid, place, text in lines:
        number = numbers.get(text)
        if number is None:
            number = numbers[text] = line_number(text)
        texts[account, number] = text
        rows.append((account, pid, place, number))
    db.executemany("INSERT INTO line_texts VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                   [(a, n, t) for (a, n), t in texts.items()])
    db.executemany("INSERT INTO purchase_lines VALUES (?, ?, ?, ?)", rows)


def line_texts_of(data: str) -> list[str]:
    """Each line item of a purchase JSON as compact JSON text."""
    return [json.dumps(i, ensure_ascii=False, separators=(",", ":")) for i in json.loads(data).get("items") or ()]


def line_number(text: str) -> int:
    """A line text's number in line_texts: the first 8 bytes of its BLAKE2b hash, as a signed 64-bit integer."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def backfill_lines(db: Db) -> None:
    """Migration 9: the line items of the purchases the snapshot already holds."""
    for rows in db.batches("SELECT account, id, data FROM purchases", (), 5000):
        add_lines(db, [(account, i, place, text) for account, i, d in rows for place, text in enumerate(line_texts_of(d))])


def purchase_upsert(db: Db) -> str:
    """A purchase row from (account, id, customer, json, run): the day, amount, currency, posted score
    and deal fields are kept as columns too (migrations 4 and 9), taken from the JSON by the database;
    its line items go to purchase_lines (absorb)."""
    field = lambda key: data_field(db.pg, "x.d", key)  # noqa: E731
    real = DDL[db.engine]["real"]
    return ("INSERT INTO purchases (account, id, customer_id, data, seen_run, day, amount, currency, nps, fields) "
            f"SELECT x.a, x.i, x.c, x.d, x.r, {field('date')}, CAST({field('amount')} AS {real}), "
            f"{field('currency')}, CAST({field('nps')} AS INTEGER), {field('fields')} "
            "FROM (SELECT ? AS a, ? AS i, ? AS c, ? AS d, ? AS r) x WHERE true "
            "ON CONFLICT(account, id) DO UPDATE SET customer_id=excluded.customer_id, data=excluded.data, "
            "seen_run=excluded.seen_run, day=excluded.day, amount=excluded.amount, currency=excluded.currency, "
            "nps=excluded.nps, fields=excluded.fields")


def drop_unseen_purchases(db: Db, account: str, run_id: int) -> int:
    db.execute("DELETE FROM purchase_lines WHERE account=? AND purchase_id IN (SELECT id FROM purchases WHERE "
               "account=? AND (seen_run IS NULL OR seen_run<>?))", (account, account, run_id))
    cur = db.execute("DELETE FROM purchases WHERE account=? AND (seen_run IS NULL OR seen_run<>?)",
                     (account, run_id))
    return cur.rowcount


# --- reading it -------------------------------------------------------------------------------

def cards_and_purchases(db: Db, account: str, ids: list[str] | None) -> Iterator[tuple[Iterator, Iterator]]:
    """(customer id, json) ordered by id, and (customer id, purchase json) ordered by customer, per chunk."""
    if ids is None:
        yield (db.stream(f"SELECT id, data FROM customers WHERE account=? ORDER BY {db.by('id')}", (account,)),
               db.stream("SELECT customer_id, data FROM purchases WHERE account=? "
                         f"ORDER BY {db.by('customer_id')}", (account,)))
        return
    for chunk in chunks(ids):
        yield (db.execute(f"SELECT id, data FROM customers WHERE account=? AND id IN ({marks(chunk)}) "
                          f"ORDER BY {db.by('id')}", (account, *chunk)),
               db.execute(f"SELECT customer_id, data FROM purchases WHERE account=? AND customer_id IN "
                          f"({marks(chunk)}) ORDER BY {db.by('customer_id')}", (account, *chunk)))


def rows_by_id(db: Db, table: str, account: str, ids: Iterable[str]) -> dict[str, str]:
    """{id: json} of these customers or purchases (`table`), those the snapshot holds."""
    assert table in ("customers", "purchases")
    out: dict[str, str] = {}
    for chunk in chunks(sorted(set(ids))):
        out.update((str(i), d) for i, d in db.execute(
            f"SELECT id, data FROM {table} WHERE account=? AND id IN ({marks(chunk)})", (account, *chunk)))
    return out


def prospect_count(db: Db, account: str) -> int:
    row = db.execute("SELECT COUNT(*) FROM customers c WHERE c.account=? AND NOT EXISTS (SELECT 1 FROM "
                     "purchases p WHERE p.account=c.account AND p.customer_id=c.id)", (account,)).fetchone()
    return int(row[0])


def prospects(db: Db, account: str, created_since: str) -> Iterator[str]:
    """Card json of customers without any purchase created on or after `created_since` (ISO day)."""
    created, params = db.json_text("c.data", "created")
    rows = db.execute(f"SELECT data FROM customers c WHERE c.account=? AND {created}>=? "
                      "AND NOT EXISTS (SELECT 1 FROM purchases p WHERE p.account=c.account AND "
                      f"p.customer_id=c.id) ORDER BY {db.by('c.id')}", (account, *params, created_since))
    for (data,) in rows:
        yield data


def has_card_field(db: Db, account: str, name: str) -> bool:
    """Whether any customer's card carries field `name` (the scan stops at the first one)."""
    field, params = db.json_text("data", "fields", name.replace('"', ""))
    row = db.execute(f"SELECT 1 FROM customers WHERE account=? AND {field} IS NOT NULL LIMIT 1",
                     (account, *params)).fetchone()
    return row is not None


def customer_of_purchase(db: Db, account: str, purchase_id: str) -> str | None:
    row = db.execute("SELECT customer_id FROM purchases WHERE account=? AND id=?", (account, purchase_id)).fetchone()
    return str(row[0]) if row else None


def product_rows(db: Db, account: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT data FROM products WHERE account=?", (account,))]


def counts(db: Db, account: str) -> dict[str, int]:
    return {t: int(db.execute(f"SELECT COUNT(*) FROM {t} WHERE account=?", (account,)).fetchone()[0])
            for t in ("customers", "purchases", "products")}


def accounts(db: Db) -> list[str]:
    """Every account the ledger or the snapshot holds."""
    return sorted({row[0] for table in ("ledger", "purchases")
                   for row in db.execute(f"SELECT DISTINCT account FROM {table}")})
