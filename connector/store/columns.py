"""The snapshot read as columns for the columnar evaluation (connector.snapshot_columns): purchases
in big chunks in (customer, day, id) order, their line items, cards and purchases of a batch of
customers, birthdays.

A purchase is named by a number `ref` that the purchase read and the line-item read agree on:
SQLite's rowid; on PostgreSQL the purchase's place in that order (the snapshot is not written
while it is evaluated).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from connector.store.engine import Db, data_field
from connector.store.snapshot import chunks, marks


def _in_order(db: Db) -> str:
    return f"{db.by('customer_id')}, day, {db.by('id')}"


def purchase_rows(db: Db, account: str, paid_field: str | None, size: int) -> Iterator[list[tuple]]:
    """(customer id, day, amount, currency, paid field's value or None, posted score or None, id, ref)
    of every purchase, grouped by customer in (day, id) order, `size` rows at a time."""
    paid, params = db.json_text("data", "fields", paid_field) if paid_field else ("NULL", ())
    ref = f"row_number() OVER (ORDER BY {_in_order(db)})" if db.pg else "rowid"
    return db.batches(f"SELECT customer_id, day, amount, currency, {paid}, nps, id, {ref} FROM purchases "
                      f"WHERE account=? ORDER BY {_in_order(db)}", (*params, account), size)


def item_rows(db: Db, account: str, size: int) -> Iterator[list[tuple]]:
    """(purchase ref, place in its list, the line's JSON text) of every purchase's line items."""
    if db.pg:
        return db.batches(f"WITH p AS (SELECT data, row_number() OVER (ORDER BY {_in_order(db)}) AS ref "
                          "FROM purchases WHERE account=?) SELECT p.ref, j.place - 1, j.line::text FROM p, "
                          f"jsonb_array_elements({data_field(True, 'p.data', 'items')}::jsonb) "
                          "WITH ORDINALITY AS j(line, place)", (account,), size)
    return db.batches("SELECT p.rowid, j.key, j.value FROM purchases p, json_each(p.data, '$.items') j "
                      "WHERE p.account=?", (account,), size)


def purchases_and_cards(db: Db, account: str, ids: Sequence[str]) -> Iterator[tuple[list, list]]:
    """([(customer id, purchase json)], [(customer id, card json)]) per batch of ids."""
    for chunk in chunks(list(ids)):
        yield (db.execute(f"SELECT customer_id, data FROM purchases WHERE account=? AND customer_id IN "
                          f"({marks(chunk)})", (account, *chunk)).fetchall(),
               db.execute(f"SELECT id, data FROM customers WHERE account=? AND id IN ({marks(chunk)})",
                          (account, *chunk)).fetchall())


def birthdays(db: Db, account: str) -> Iterator[tuple[str, str]]:
    """(customer id, ISO birthday) of the customers whose card has one."""
    born, params = db.json_text("data", "birthday")
    yield from db.execute(f"SELECT id, {born} FROM customers WHERE account=? AND {born} IS NOT NULL",
                          (*params, account, *params))


def purchase_days(db: Db, account: str) -> Iterator[tuple[str, str | None]]:
    """(customer id, day) of every purchase, grouped by customer (the card fields' next purchase)."""
    yield from db.stream(f"SELECT customer_id, day FROM purchases WHERE account=? ORDER BY {db.by('customer_id')}",
                         (account,))


def tags_holding(db: Db, account: str, text: str) -> Iterator[tuple[str, str]]:
    """(customer id, JSON list of its card's tags) of the cards with a tag containing `text`."""
    tags, params = db.json_text("data", "tags")
    yield from db.execute(f"SELECT id, {tags} FROM customers WHERE account=? AND {tags} LIKE ?",
                          (*params, account, *params, f"%{text}%"))
