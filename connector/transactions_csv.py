"""Reads a transactions CSV (`repeat-sales analyze FILE.csv`) into CRM-neutral customers.

Columns (header required, names case-insensitive): `customer_id`, `date`, `amount`; optional
`product`, `quantity`, `order_id`, `category`, `currency`, `customer_name`, `email`, `phone`;
any other column is ignored. Rows are streamed into compact per-column arrays, so a
1,000,000-row file never holds a million dicts.

Messy exports: a UTF-8 BOM is skipped (cp1251 is tried when the file is not UTF-8); the
separator (`,` `;` tab `|`) is taken from the header line; rows may come in any order;
amounts may use decimal commas and spaces ("1 234,50"); dates are ISO dates or datetimes
(`2026-03-01`, `2026-03-01 14:05`, `2026-03-01T14:05:00+03:00`: the date as written) or
`DD.MM.YYYY`. Rows sharing an `order_id` form one purchase (its date is the earliest row's);
without it each row is one purchase, whose id is `<date>` (`<date>#2`, ... for more on one
day, ordered by amount and product), stable however the file is sorted.

Nothing is read wrong in silence: a row with more cells than the header (an unquoted
`1 234,50` in a comma-separated file), a quote left open (it would swallow the rows after it),
an amount that is no money (`nan`, `inf`, 10^15 or more) or a byte the encoding cannot read
stops the reading with a CsvInputError naming the line.

Refunds (negative amounts): inside an order they simply reduce its total. Without `order_id`
a refund row is subtracted from the customer's latest purchase on or before its date (of the
same product when the row names one); a refund with nothing to match is dropped and counted.
A purchase whose total ends at zero or below stays in the data but is no purchase for the
playbooks (see README.md, "Definitions"); zero-amount rows are kept the same way.
"""

from __future__ import annotations

import csv
import re
from array import array
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from connector.csv_text import (
    QUOTE_HINT,
    SHIFT_HINT,
    bad_byte_error,
    open_text,
    parse_date,
    records,
    runaway_quote,
    separator_of,
    shown,
)
from connector.csv_text import (
    Interner as _Interner,
)
from connector.errors import CsvInputError
from connector.model import Customer, LineItem, Purchase

REQUIRED = ("customer_id", "date", "amount")
OPTIONAL = ("product", "quantity", "order_id", "category", "currency", "customer_name", "email", "phone")
ALIASES = {
    "customer": "customer_id", "client_id": "customer_id", "client": "customer_id", "contact_id": "customer_id",
    "datetime": "date", "order_date": "date", "sum": "amount", "total": "amount", "revenue": "amount",
    "qty": "quantity", "order": "order_id", "deal_id": "order_id", "product_name": "product", "sku": "product",
    "name": "customer_name",
}
ITEM_CACHE_SIZE = 200_000
MAX_AMOUNT = 1e15  # more is a broken cell (1e999, a card number), not money; it keeps every sum finite
_SPACES = re.compile(r"[\s\u00a0\u202f']")


@dataclass
class CsvSummary:
    """What reading the file did, for the CLI to report."""

    rows: int = 0
    customers: int = 0
    purchases: int = 0
    refunds_applied: int = 0
    refunds_unmatched: int = 0
    zero_amount_rows: int = 0
    blank_lines: int = 0
    separator: str = ","
    encoding: str = "utf-8"
    ignored_columns: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The `input` object of `analyze --format json`. A row that cannot be read stops the run
        (exit 2, naming its line), so `rows_rejected` of a finished run is 0: said, not implied."""
        return {"rows_read": self.rows, "rows_rejected": 0, "blank_lines": self.blank_lines,
                "customers": self.customers, "purchases": self.purchases,
                "refunds_applied": self.refunds_applied, "refunds_unmatched": self.refunds_unmatched,
                "zero_amount_rows": self.zero_amount_rows, "separator": self.separator,
                "encoding": self.encoding, "ignored_columns": list(self.ignored_columns)}


def parse_amount(text: str, row: int, column: str = "amount") -> float:
    """`1234.5`, `1 234,50`, `1.234,50`, `1,234.50`, `-300` -> float; anything else CsvInputError.

    `nan`, `inf` and amounts of MAX_AMOUNT or more are refused: no money, and no strict JSON after.
    """
    try:
        value = float(text)
    except ValueError:
        value = _written_amount(text)
    if -MAX_AMOUNT < value < MAX_AMOUNT:  # false for nan and inf too
        return value
    raise CsvInputError(row, column, f"not a number: {shown(text)}",
                        hint="write amounts like 1234.50 or 1 234,50; no text, nan or inf in the cell")


def _written_amount(text: str) -> float:
    """What people write (`1 234,50 ₽`) as a float; nan when it is no number at all."""
    s = _SPACES.sub("", text.strip())
    for sign in ("₽", "руб.", "руб", "р.", "$", "€", "RUB", "USD", "EUR"):
        s = s.replace(sign, "")
    if "," in s and "." in s:
        if s.rfind(",") > s.rfind("."):
            s = s.replace(".", "").replace(",", ".")
        else:
            s = s.replace(",", "")
    elif s.count(",") == 1:
        s = s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return float("nan")


def _columns(header: list[str]) -> tuple[dict[str, int], list[str]]:
    index: dict[str, int] = {}
    ignored = []
    for i, raw in enumerate(header):
        name = re.sub(r"\s+", "_", raw.strip().strip('"').lower())
        name = ALIASES.get(name, name)
        if name in REQUIRED or name in OPTIONAL:
            if name in index:
                raise CsvInputError(1, raw, f"column {name!r} appears twice", hint="keep one column of that name")
            index[name] = i
        elif raw.strip():
            ignored.append(raw.strip())
    missing = [c for c in REQUIRED if c not in index]
    if missing:
        raise CsvInputError(1, missing[0], "missing required column",
                            hint=f"the header must name {', '.join(REQUIRED)}; found: {', '.join(header)}")
    return index, ignored


def read_transactions(path: str | Path, *, default_currency: str = "RUB") -> list[Customer]:
    """Customers with their purchases, sorted by customer id; see the module doc for the rules."""
    return read_transactions_with_summary(path, default_currency=default_currency)[0]


def read_transactions_with_summary(path: str | Path, *, default_currency: str = "RUB"
                                   ) -> tuple[list[Customer], CsvSummary]:
    rows, summary = read_rows(path, default_currency=default_currency)
    customers = rows.customers(summary)
    summary.customers = len(customers)
    summary.purchases = sum(len(c.purchases) for c in customers)
    return customers, summary


def read_rows(path: str | Path, *, default_currency: str = "RUB", bulk_only: bool = False
              ) -> tuple[_Rows | None, CsvSummary]:
    """The file's rows as columns, every line checked (connector.transactions_columns reads them);
    `bulk_only`: None instead of the line reader's rows when the bulk read doubts the file."""
    path = Path(path)
    fh, encoding = open_text(path)
    summary = CsvSummary(encoding=encoding.replace("-sig", ""))
    with fh:
        try:
            first = fh.readline()
            if not first.strip():
                raise CsvInputError(1, None, "the file is empty", hint="the first line must be a header")
            sep = separator_of(first)
            summary.separator = sep
            header = next(csv.reader([first], delimiter=sep))
            cols, summary.ignored_columns = _columns(header)
            rows = _Rows()
            from connector.csv_fast import plain_rows  # plain cells in bulk; else (or any doubt) line by line

            if plain_rows(path, header, cols, sep, encoding, default_currency, summary, rows) is None:
                if bulk_only:
                    return None, summary
                rows = _Rows()
                rows.load(csv.reader(fh, delimiter=sep, strict=True), header, cols, default_currency, summary)
        except UnicodeDecodeError as exc:
            raise bad_byte_error(path, encoding, exc) from None
    return rows, summary


class _Rows:
    """The file as parallel arrays (one slot per row) plus interned strings."""

    def __init__(self) -> None:
        self.cust = array("i")
        self.day = array("i")
        self.amount = array("d")
        self.qty = array("d")
        self.product = array("i")
        self.category = array("i")
        self.order = array("i")
        self.currency = array("i")
        self.line = array("i")
        self.customers_ids = _Interner()
        self.strings = _Interner()  # products, categories, orders, currencies; "" is 0
        self.strings("")
        self.profile: dict[int, tuple[str, str, str]] = {}
        self.order_owner: dict[int, int] = {}
        self._items: dict[tuple, LineItem] = {}
        self._dates: dict[int, date] = {}

    def load(self, reader, header: list[str], cols: dict[str, int], default_currency: str,
             summary: CsvSummary) -> None:
        """Every row into the arrays; `line` is a row's first line (a quoted cell may span more)."""
        i_c, i_d, i_a = cols["customer_id"], cols["date"], cols["amount"]
        opt = {k: cols.get(k) for k in OPTIONAL}
        q_i, o_i, cur_i, p_i, cat_i = (opt[k] for k in ("quantity", "order_id", "currency", "product", "category"))
        profile_cols = [opt[k] for k in ("customer_name", "email", "phone")]
        has_profile = any(i is not None for i in profile_cols)
        width = max(cols.values()) + 1
        used = set(cols.values())
        dates: dict[str, int] = {}
        intern = self.strings
        default_cur = intern(default_currency)
        sep = reader.dialect.delimiter
        for line, end, rec in records(reader):
            if end > line:
                runaway_quote(rec, line, end, header, used, sep)
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                summary.blank_lines += 1
                continue
            if len(rec) > len(header):
                raise CsvInputError(line, None, f"{len(rec)} cells but the header names {len(header)} columns",
                                    hint=SHIFT_HINT if sep == "," else QUOTE_HINT)
            if len(rec) < width:
                rec = rec + [""] * (width - len(rec))
            cid = rec[i_c].strip()
            if not cid:
                raise CsvInputError(line, "customer_id", "empty customer id", hint="every row needs the buyer's id")
            raw_day = rec[i_d]
            ordinal = dates.get(raw_day)
            if ordinal is None:
                if not raw_day.strip():
                    raise CsvInputError(line, "date", "empty date", hint="use YYYY-MM-DD")
                if len(dates) > 50_000:  # datetimes with times rarely repeat; keep the cache small
                    dates.clear()
                ordinal = dates[raw_day] = parse_date(raw_day, line).toordinal()
            raw_amount = rec[i_a]
            if not raw_amount.strip():
                raise CsvInputError(line, "amount", "empty amount", hint="write 0 for a free order")
            amount = parse_amount(raw_amount, line)
            qty = 1.0
            if q_i is not None and rec[q_i].strip():
                qty = parse_amount(rec[q_i], line, "quantity")
                if qty == 0:
                    raise CsvInputError(line, "quantity", "quantity is 0", hint="leave it empty for 1")
            ci = self.customers_ids(cid)
            order = intern(rec[o_i].strip()) if o_i is not None else 0
            if order:
                owner = self.order_owner.setdefault(order, ci)
                if owner != ci:
                    raise CsvInputError(line, "order_id", f"order {intern.values[order]!r} belongs to customers "
                                        f"{self.customers_ids.values[owner]!r} and {cid!r}",
                                        hint="an order id must belong to one customer")
            cur = default_cur
            if cur_i is not None and rec[cur_i].strip():
                cur = intern(rec[cur_i].strip().upper())
            self.cust.append(ci)
            self.day.append(ordinal)
            self.amount.append(amount)
            self.qty.append(qty)
            self.product.append(intern(rec[p_i].strip()) if p_i is not None else 0)
            self.category.append(intern(rec[cat_i].strip()) if cat_i is not None else 0)
            self.order.append(order)
            self.currency.append(cur)
            self.line.append(line)
            if amount == 0:
                summary.zero_amount_rows += 1
            if has_profile and ci not in self.profile:
                prof = tuple(rec[i].strip() if i is not None else "" for i in profile_cols)
                if any(prof):
                    self.profile[ci] = prof  # type: ignore[assignment]
        summary.rows = len(self.cust)

    def customers(self, summary: CsvSummary) -> list[Customer]:
        # counting sort of row numbers by customer: two int arrays instead of a million-int lists
        n_customers = len(self.customers_ids.values)
        start = array("i", bytes(4 * (n_customers + 1)))
        for ci in self.cust:
            start[ci + 1] += 1
        for ci in range(n_customers):
            start[ci + 1] += start[ci]
        fill = array("i", start)
        rows_by_customer = array("i", bytes(4 * len(self.cust)))
        for row, ci in enumerate(self.cust):
            rows_by_customer[fill[ci]] = row
            fill[ci] += 1
        del fill
        out = []
        for ci in range(n_customers):
            out.append(self.customer(ci, rows_by_customer[start[ci]:start[ci + 1]], summary))
        out.sort(key=lambda c: c.id)
        return out

    def customer(self, ci: int, rows, summary: CsvSummary) -> Customer:
        """Customer `ci` (interned index) from its row numbers, in file order."""
        cid = self.customers_ids.values[ci]
        name, email, phone = self.profile.get(ci, ("", "", ""))
        purchases = self._purchases(cid, rows, summary)
        return Customer(id=cid, name=name, emails=(email,) if email else (),
                        phones=(phone,) if phone else (), purchases=tuple(purchases))

    def _purchases(self, cid: str, rows: array, summary: CsvSummary) -> list[Purchase]:
        s = self.strings.values
        groups: dict[object, list[int]] = {}
        refunds: list[int] = []
        for r in rows:
            if self.order[r]:
                groups.setdefault(("o", self.order[r]), []).append(r)
            elif self.amount[r] < 0:
                refunds.append(r)
            else:
                groups.setdefault(("r", r), []).append(r)
        drafts = []  # [date ordinal, sort key, id or None, rows, amount]
        for (kind, ref), members in groups.items():
            # line items in a stable order, whatever the order of the rows in the file
            members.sort(key=lambda r: (s[self.product[r]], self.amount[r], self.qty[r], s[self.category[r]]))
            day = min(self.day[r] for r in members)
            total = sum(self.amount[r] for r in members)
            oid = s[ref] if kind == "o" else None
            drafts.append([day, (self.amount[members[0]], s[self.product[members[0]]], self.qty[members[0]]),
                           oid, members, total])
        drafts.sort(key=lambda d: (d[0], d[2] is not None, d[2] or "", d[1]))
        for r in sorted(refunds, key=lambda r: (self.day[r], self.line[r])):
            target = None
            for d in reversed(drafts):
                if d[0] <= self.day[r] and d[4] > 0 and (not self.product[r] or any(
                        self.product[m] == self.product[r] for m in d[3])):
                    target = d
                    break
            if target is None:
                summary.refunds_unmatched += 1
                continue
            target[4] += self.amount[r]
            target[3] = [*target[3], r]
            summary.refunds_applied += 1
        out = []
        per_day: dict[int, int] = {}
        for day, _key, oid, members, total in drafts:
            d = self._date(day)
            if oid is None:
                k = per_day[day] = per_day.get(day, 0) + 1
                oid = d.isoformat() if k == 1 else f"{d.isoformat()}#{k}"
            items = tuple(self._item(m) for m in members if self.product[m] and self.amount[m] >= 0)
            currency = s[self.currency[members[0]]]
            out.append(Purchase(id=oid, customer_id=cid, date=d, amount=round(total, 2), currency=currency,
                                items=items))
        return out

    def _item(self, r: int) -> LineItem:
        """Line items are frozen and repeat a lot (same product, quantity, amount): share them."""
        key = (self.product[r], self.category[r], self.qty[r], self.amount[r])
        item = self._items.get(key)
        if item is None:
            if len(self._items) > ITEM_CACHE_SIZE:
                self._items.clear()
            s = self.strings.values
            qty = self.qty[r]
            name = s[self.product[r]]
            item = self._items[key] = LineItem(product_id=name, name=name, quantity=qty,
                                               price=round(self.amount[r] / qty, 2) if qty else 0.0,
                                               category=s[self.category[r]] or None)
        return item

    def _date(self, ordinal: int) -> date:
        day = self._dates.get(ordinal)
        if day is None:
            day = self._dates[ordinal] = date.fromordinal(ordinal)
        return day
