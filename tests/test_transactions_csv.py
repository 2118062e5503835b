"""The transactions CSV reader on messy real-world exports."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connector.errors import CsvInputError
from connector.transactions_csv import parse_amount, read_transactions, read_transactions_with_summary


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def by_id(customers):
    return {c.id: c for c in customers}


def test_minimal_file_one_row_one_purchase(tmp_path):
    path = write(tmp_path, "customer_id,date,amount\n7,2026-03-01,1500\n7,2026-01-10,500\n8,2026-02-01,100\n")
    customers = read_transactions(path)
    assert [c.id for c in customers] == ["7", "8"]
    seven = customers[0]
    assert [(p.id, p.date, p.amount) for p in seven.purchases] == [
        ("2026-01-10", date(2026, 1, 10), 500.0), ("2026-03-01", date(2026, 3, 1), 1500.0)]


def test_unsorted_rows_give_the_same_customers_and_ids(tmp_path):
    rows = ["1,2026-03-01,100,tea", "2,2026-01-01,50,cup", "1,2026-03-01,300,coffee", "1,2026-01-05,10,tea"]
    a = read_transactions(write(tmp_path, "customer_id,date,amount,product\n" + "\n".join(rows) + "\n", name="a.csv"))
    b = read_transactions(write(tmp_path, "customer_id,date,amount,product\n" + "\n".join(rows[::-1]) + "\n",
                                name="b.csv"))
    assert a == b
    # several orders on one day get distinct, order-independent ids
    assert [p.id for p in by_id(a)["1"].purchases] == ["2026-01-05", "2026-03-01", "2026-03-01#2"]


def test_order_id_groups_rows_into_one_purchase_with_line_items(tmp_path):
    text = ("customer_id,date,amount,product,quantity,order_id\n"
            "1,2026-03-01,1000,coffee,2,A-1\n1,2026-03-01,300,cup,1,A-1\n1,2026-03-05,200,tea,1,A-2\n")
    c = read_transactions(write(tmp_path, text))[0]
    assert [p.id for p in c.purchases] == ["A-1", "A-2"]
    first = c.purchases[0]
    assert first.amount == 1300
    assert [(i.product_id, i.quantity, i.price) for i in first.items] == [("coffee", 2.0, 500.0), ("cup", 1.0, 300.0)]


def test_semicolon_bom_decimal_comma_and_extra_columns(tmp_path):
    text = "\ufeffCustomer_ID;Дата заказа;Date;Amount;Менеджер\n42;x;2026-03-01;1 234,50;Ольга\n42;y;2026-03-02;\"2 000\";Ольга\n"
    customers, summary = read_transactions_with_summary(write(tmp_path, text))
    assert summary.separator == ";"
    assert summary.ignored_columns == ["Дата заказа", "Менеджер"]
    assert [p.amount for p in customers[0].purchases] == [1234.5, 2000.0]


@pytest.mark.parametrize("text,value", [("1234.5", 1234.5), ("1 234,50", 1234.5), ("1\u00a0234,50", 1234.5),
                                        ("1.234,50", 1234.5), ("1,234.50", 1234.5), ("-300", -300.0),
                                        ("12,5", 12.5), ("1 000 ₽", 1000.0), ("0", 0.0)])
def test_amount_formats(text, value):
    assert parse_amount(text, 2) == value


def test_dates_with_and_without_time(tmp_path):
    text = ("customer_id,date,amount\n1,2026-03-01 14:05,100\n1,2026-03-02T09:00:00+03:00,100\n"
            "1,03.03.2026,100\n1,2026-03-04T23:59:59Z,100\n1,2026-03-05T10:00:00.123,100\n")
    c = read_transactions(write(tmp_path, text))[0]
    assert [p.date.day for p in c.purchases] == [1, 2, 3, 4, 5]


def test_cp1251_export_is_read(tmp_path):
    text = "customer_id;date;amount;product\n1;2026-03-01;100;Кофе\n"
    c = read_transactions(write(tmp_path, text, encoding="cp1251"))[0]
    assert c.purchases[0].items[0].name == "Кофе"


def test_refund_inside_an_order_reduces_it(tmp_path):
    text = ("customer_id,date,amount,product,order_id\n1,2026-03-01,1000,coffee,A\n1,2026-03-01,300,cup,A\n"
            "1,2026-03-04,-300,cup,A\n")
    p = read_transactions(write(tmp_path, text))[0].purchases[0]
    assert p.amount == 1000
    assert [i.product_id for i in p.items] == ["coffee", "cup"]  # refund rows are no line items


def test_refund_without_order_matches_latest_purchase_of_the_product(tmp_path):
    text = ("customer_id,date,amount,product\n1,2026-03-01,1000,coffee\n1,2026-03-02,500,tea\n"
            "1,2026-03-10,-400,coffee\n1,2026-03-10,-100\n2,2026-03-10,-50,tea\n")
    customers, summary = read_transactions_with_summary(write(tmp_path, text))
    one = by_id(customers)["1"]
    assert [(p.id, p.amount) for p in one.purchases] == [("2026-03-01", 600.0), ("2026-03-02", 400.0)]
    assert summary.refunds_applied == 2
    assert summary.refunds_unmatched == 1  # customer 2 has nothing to refund
    assert by_id(customers)["2"].purchases == ()


def test_full_refund_and_zero_amount_are_kept_but_not_positive(tmp_path):
    text = "customer_id,date,amount,order_id\n1,2026-03-01,500,A\n1,2026-03-02,-500,A\n1,2026-03-03,0,B\n"
    customers, summary = read_transactions_with_summary(write(tmp_path, text))
    assert [p.amount for p in customers[0].purchases] == [0.0, 0.0]
    assert summary.zero_amount_rows == 1


def test_customer_id_is_compared_as_a_string(tmp_path):
    text = "customer_id,date,amount\n007,2026-03-01,1\n7,2026-03-01,1\n 7 ,2026-03-02,1\n"
    assert {c.id: len(c.purchases) for c in read_transactions(write(tmp_path, text))} == {"007": 1, "7": 2}


def test_profile_columns_fill_the_customer(tmp_path):
    text = "customer_id,date,amount,customer_name,email,phone\n1,2026-03-01,1,Анна,a@x.ru,+7900\n"
    c = read_transactions(write(tmp_path, text))[0]
    assert (c.name, c.emails, c.phones) == ("Анна", ("a@x.ru",), ("+7900",))


@pytest.mark.parametrize("text,row,column,words", [
    ("customer_id,amount\n1,100\n", 1, "date", ["missing required column", "customer_id, date, amount"]),
    ("customer_id,date,amount\n1,2026-03-01,100\n1,yesterday,5\n", 3, "date", ["not a date", "YYYY-MM-DD"]),
    ("customer_id,date,amount\n1,2026-02-30,100\n", 2, "date", ["no such date"]),
    ("customer_id,date,amount\n1,2026-03-01,abc\n", 2, "amount", ["not a number", "1 234,50"]),
    ("customer_id,date,amount\n1,2026-03-01,\n", 2, "amount", ["empty amount"]),
    ("customer_id,date,amount\n,2026-03-01,5\n", 2, "customer_id", ["empty customer id"]),
    ("customer_id,date,amount,quantity\n1,2026-03-01,5,0\n", 2, "quantity", ["quantity is 0"]),
    ("customer_id,date,amount,order_id\n1,2026-03-01,5,A\n2,2026-03-01,5,A\n", 3, "order_id", ["belongs to customers"]),
    ("customer_id,date,amount,Amount\n1,2026-03-01,5,5\n", 1, "Amount", ["appears twice"]),
    ("", 1, None, ["empty"]),
])
def test_bad_input_names_line_and_column(tmp_path, text, row, column, words):
    with pytest.raises(CsvInputError) as info:
        read_transactions(write(tmp_path, text))
    err = info.value
    assert (err.row, err.column) == (row, column)
    for word in words:
        assert word in str(err)
    assert err.exit_code == 2


def test_missing_file(tmp_path):
    with pytest.raises(CsvInputError, match="not found"):
        read_transactions(tmp_path / "none.csv")


def test_reader_feeds_evaluate(tmp_path):
    from playbooks import evaluate, load_playbook

    text = "customer_id,date,amount\n1,2026-01-01,1000\n1,2026-02-01,2000\n2,2026-02-15,500\n"
    ev = evaluate(read_transactions(write(tmp_path, text)), date(2026, 3, 1), load_playbook())
    assert ev.metrics["customers"] == 2 and ev.metrics["repeat_rate"] == 0.5


def test_row_order_inside_an_order_does_not_matter(tmp_path):
    rows = ["1,2026-03-01,300,cup,A", "1,2026-03-01,1000,coffee,A", "1,2026-03-01,50,spoon,A"]
    head = "customer_id,date,amount,product,order_id\n"
    a = read_transactions(write(tmp_path, head + "\n".join(rows) + "\n", name="a.csv"))
    b = read_transactions(write(tmp_path, head + "\n".join(reversed(rows)) + "\n", name="b.csv"))
    assert a == b
    assert [i.product_id for i in a[0].purchases[0].items] == ["coffee", "cup", "spoon"]


# --- nothing read wrong in silence ----------------------------------------------------------------


def test_an_unclosed_quote_is_refused_at_its_line_not_swallowing_the_rest(tmp_path):
    rows = "".join(f"{i},2026-01-02,50,cup\n" for i in range(2, 1002))
    path = write(tmp_path, 'customer_id,date,amount,product\n1,2026-01-01,100,"tea\n' + rows)
    with pytest.raises(CsvInputError) as info:
        read_transactions(path)
    assert info.value.row == 2 and "quote" in str(info.value)
    assert len(str(info.value)) < 300  # the swallowed rows are not printed back


@pytest.mark.parametrize("text,row", [
    ('customer_id,date,amount,product\n1,2026-01-01,100,"tea\n2,2026-01-02,50,cup\n3,2026-01-03,70,"mug"\n', 2),
    ('customer_id,date,amount,product\n2,2026-01-02,50,cup\n1,2026-01-01,100,"tea\n', 3),
    ('customer_id,date,amount,product\n2,2026-01-02,50,cup\n1,2026-01-01,100,"tea', 3),
    # the runaway cell is a column nobody reads, but it swallowed rows that look like rows
    ('customer_id,date,amount,note\n1,2026-01-01,100,"late\n2,2026-01-02,50,ok\n3,2026-01-03,70,"x"\n', 2),
])
def test_a_quote_closed_rows_later_or_never_is_refused(tmp_path, text, row):
    with pytest.raises(CsvInputError) as info:
        read_transactions(write(tmp_path, text))
    assert info.value.row == row and "quote" in str(info.value)


def test_a_multiline_note_in_an_ignored_column_is_read(tmp_path):
    text = 'customer_id,date,amount,note\n1,2026-01-01,100,"call first\nthen email"\n2,2026-01-02,50,\n'
    customers, summary = read_transactions_with_summary(write(tmp_path, text))
    assert [c.id for c in customers] == ["1", "2"] and summary.rows == 2


@pytest.mark.parametrize("row", ["1,2026-01-01,1 234,50,tea", "1,2026-01-01,1 234,50,", "1,2026-01-01,12,5,tea"])
def test_an_unquoted_decimal_comma_in_a_comma_file_is_refused(tmp_path, row):
    text = f"customer_id,date,amount,product\n2,2026-01-01,10,cup\n{row}\n"
    with pytest.raises(CsvInputError) as info:
        read_transactions(write(tmp_path, text))
    assert info.value.row == 3 and "5 cells" in str(info.value) and '"1 234,50"' in str(info.value)


def test_a_quoted_decimal_comma_in_a_comma_file_is_read(tmp_path):
    text = 'customer_id,date,amount,product\n1,2026-01-01,"1 234,50",tea\n'
    assert read_transactions(write(tmp_path, text))[0].purchases[0].amount == 1234.5


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e16"])
def test_amounts_that_are_no_money_are_refused(tmp_path, value):
    with pytest.raises(CsvInputError) as info:
        read_transactions(write(tmp_path, f"customer_id,date,amount\n1,2026-01-01,10\n1,2026-01-02,{value}\n"))
    assert (info.value.row, info.value.column) == (3, "amount")
    with pytest.raises(CsvInputError) as info:
        read_transactions(write(tmp_path, f"customer_id,date,amount,quantity\n1,2026-01-01,10,{value}\n"))
    assert (info.value.row, info.value.column) == (2, "quantity")


@pytest.mark.parametrize("filler", [0, 70_000])  # the stray byte inside the sniffed start, or far after it
def test_a_stray_byte_in_a_utf8_file_names_its_line(tmp_path, filler):
    rows = "".join(f"{i},2026-01-02,50,Кофе\n" for i in range(filler // 25))
    data = ("customer_id,date,amount,product\n" + rows + "1,2026-01-01,100,Чай\n").encode("utf-8")
    data += b"2,2026-01-01,100,te\xffa\n3,2026-01-01,5,cup\n"
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    with pytest.raises(CsvInputError) as info:
        read_transactions(path)
    assert info.value.row == filler // 25 + 3 and "UTF-8" in str(info.value) and "0xff" in str(info.value)


def test_a_stray_byte_in_an_ascii_file_is_no_cp1251(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"customer_id,date,amount,product\n1,2026-01-01,100,te\xffa\n2,2026-01-01,5,cup\n")
    with pytest.raises(CsvInputError) as info:
        read_transactions(path)
    assert info.value.row == 2


def test_the_summary_counts_what_was_read(tmp_path):
    text = ("customer_id,date,amount,product\n1,2026-03-01,1000,coffee\n\n1,2026-03-10,-100,tea\n"
            "2,2026-03-02,0,cup\n")
    _, summary = read_transactions_with_summary(write(tmp_path, text))
    expected = {"rows_read": 3, "rows_rejected": 0, "blank_lines": 1, "refunds_unmatched": 1, "refunds_applied": 0,
                "zero_amount_rows": 1, "customers": 2, "separator": ","}
    assert {k: summary.to_json()[k] for k in expected} == expected
