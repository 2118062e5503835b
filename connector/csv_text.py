"""A CSV export's bytes as text and rows: encoding, separator, the line of a damaged byte or of a
quote left open.

Exports from Russian shops come as UTF-8 or cp1251. A UTF-8 file with one stray byte is still
UTF-8: reading it as cp1251 would turn every letter into mojibake in silence, so the reader
refuses it instead, naming the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from connector.errors import CsvInputError

SEPARATORS = (",", ";", "\t", "|")
SNIFF_BYTES = 1 << 16
_CP1251_WORD = re.compile(rb"[\xc0-\xff]{2}")  # two Cyrillic letters in a row, as cp1251 writes them


def encoding_of(head: bytes) -> str:
    """`utf-8-sig` unless the file's start reads as cp1251 words rather than as UTF-8 with a stray byte."""
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(head)  # a character cut at the end waits
    bad = text.count("\ufffd")
    if not bad:
        return "utf-8-sig"
    good = len(text) - len(text.encode("ascii", "ignore")) - bad  # well-formed non-ASCII characters
    return "cp1251" if good < bad and _CP1251_WORD.search(head) else "utf-8-sig"


def open_text(path: Path) -> tuple[io.TextIOBase, str]:
    """The file opened for csv in its encoding; a missing or unreadable file is a CsvInputError."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise CsvInputError(None, None, f"file not found: {path}", hint="pass the path of a .csv file") from None
    except OSError as exc:
        raise CsvInputError(None, None, f"cannot read {path}: {exc.strerror}") from None
    encoding = encoding_of(head)
    return open(path, encoding=encoding, newline=""), encoding


def bad_byte_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> CsvInputError:
    """The first line that does not decode, found anew: the text layer decodes ahead of the csv reader."""
    name = "UTF-8" if encoding.startswith("utf-8") else encoding
    line, byte = None, exc.object[exc.start]
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as line_exc:
                line, byte = number, raw[line_exc.start]
                break
    hint = ("the rest of the file is UTF-8: retype or delete the damaged character on that line, "
            "or save the file again as UTF-8") if name == "UTF-8" else "save the file as UTF-8 and try again"
    return CsvInputError(line, None, f"byte 0x{byte:02x} is not valid {name}", hint=hint)


def separator_of(header_line: str) -> str:
    """The separator the header uses most (a comma when it uses none)."""
    counts = {sep: header_line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda s: (counts[s], s == ","))
    return best if counts[best] else ","


def shown(text: str, limit: int = 40) -> str:
    """A cell quoted for an error message, cut short: a runaway cell can hold the rest of the file."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


QUOTE_HINT = 'close a quoted cell on its own line; a quote inside a quoted cell is written twice ("")'
SHIFT_HINT = ('a comma inside a cell shifts the columns: quote that cell ("1 234,50"), write amounts '
              "with a dot (1234.50), or separate the columns with ;")


def records(reader) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of each row; quotes csv cannot parse become a CsvInputError there."""
    end = 1  # the header, read before the reader started
    try:
        for rec in reader:
            line, end = end + 1, reader.line_num + 1
            yield line, end, rec
    except csv.Error as exc:
        what = "a quote opened here is never closed" if "end of data" in str(exc) else f"broken CSV: {exc}"
        raise CsvInputError(end + 1, None, what, hint=QUOTE_HINT) from None


def runaway_quote(rec: list[str], line: int, end: int, header: list[str], used: set[int], sep: str) -> None:
    """A row over several lines holds a quoted cell with line breaks: fine in a note nobody reads, but
    in a column we read, or when its lines look like rows, it is a quote never closed that ate rows."""
    for i, cell in enumerate(rec):
        if "\n" not in cell and "\r" not in cell:
            continue
        if i in used or any(part.count(sep) >= len(header) - 1 for part in cell.splitlines()):
            column = header[i].strip() if i < len(header) else None
            raise CsvInputError(line, column, f"a quoted cell runs on to line {end}: is a closing quote missing?",
                                hint=QUOTE_HINT)


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_RU = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?$")


def parse_date(text: str, row: int, column: str = "date") -> date:
    """ISO date or datetime (the date as written), or DD.MM.YYYY."""
    s = text.strip()
    m = _ISO.match(s)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _RU.match(s)
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        raise CsvInputError(row, column, f"no such date: {shown(text)}", hint="check day and month") from None
    raise CsvInputError(row, column, f"not a date: {shown(text)}",
                        hint="use YYYY-MM-DD (a time after it is fine) or DD.MM.YYYY")


class Interner:
    """Each distinct text once, numbered in order of first sight (customer ids, products, orders...)."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.values)
            self.values.append(value)
        return i
