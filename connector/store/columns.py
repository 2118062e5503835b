"""The snapshot read as columns for the columnar evaluation (connector.snapshot_columns): purchases
in big chunks in (customer, day, id) order, their line items, cards and purchases of a batch of
customers, birthdays.

A purchase is named by a number `ref` that the purchase read and the line-item read agree on:
SQLite's rowid; on PostgreSQL the purchase's place in that order (the snapshot is not written
while it is evaluated).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from connector.store.engine import Db
from connector.store.snapshot import chunks, marks


def _in_order(db: Db) -> str:
    return f"{db.by('customer_id')}, day, {db.by('id')}"


def purchase_rows(db: Db, account: str, size: int) -> Iterator[list[tuple]]:
    """(customer id, day, amount, currency, posted score or None, id, ref) of every purchase, grouped by
    customer in (day, id) order, `size` rows at a time: all read from one index (migration 9)."""
    ref = f"row_number() OVER (ORDER BY {_in_order(db)})" if db.pg else "rowid"
    return db.batches(f"SELECT customer_id, day, amount, currency, nps, id, {ref} FROM purchases "
                      f"WHERE account=? ORDER BY {_in_order(db)}", (account,), size)


def paid_values(db: Db, account: str, paid_field: str) -> Iterator[tuple[str, str]]:
    """(purchase id, text) of the purchases whose deal fields hold `paid_field` (the few with fields)."""
    paid, params = db.json_text("fields", paid_field)
    yield from db.execute(f"SELECT id, {paid} FROM purchases WHERE account=? AND fields IS NOT NULL "
                          f"AND {paid} IS NOT NULL", (*params, account, *params))


def item_rows(db: Db, account: str, size: int) -> Iterator[list[tuple]]:
    """(purchase ref, place in its list, the line's number in line_texts) of every purchase's line items."""
    if db.pg:
        return db.batches(f"WITH p AS (SELECT id, row_number() OVER (ORDER BY {_in_order(db)}) AS ref "
                          "FROM purchases WHERE account=?) SELECT p.ref, l.place, l.line FROM p JOIN purchase_lines l "
                          "ON l.account=? AND l.purchase_id=p.id", (account, account), size)
    return db.batches("SELECT p.rowid, l.place, l.line FROM purchase_lines l JOIN purchases p "
                      "ON p.account=l.account AND p.id=l.purchase_id WHERE l.account=?", (account,), size)


def line_texts(db: Db, account: str) -> Iterator[tuple[int, str]]:
    """(number, JSON text) of every line item text the account's purchases named (most repeat)."""
    yield from db.execute("SELECT id, line FROM line_texts WHERE account=?", (account,))


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
