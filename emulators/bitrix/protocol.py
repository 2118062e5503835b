"""Wire-level pieces of the Bitrix24 REST protocol: errors, request params, portal dates.

Doc: settings/how-to-call-rest-api/general-principles.md, data-encoding.md,
_includes/system-errors.md, api-reference/data-types.md (time, datetime).
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import unquote

from emulators.kit.forms import key_path

PAGE_SIZE = 50  # Doc: settings/how-to-call-rest-api/list-methods-pecularities.md (fixed, no page-size param)
PORTAL_TZ = timezone(timedelta(hours=3))  # the portal's server time, Moscow


class ApiError(Exception):
    """An answer with a non-2xx status and the `{"error", "error_description"}` body."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description

    def body(self) -> dict:
        return {"error": self.code, "error_description": self.description}


# Doc: _includes/system-errors.md
def query_limit_exceeded() -> ApiError:
    return ApiError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")


def operation_time_limit() -> ApiError:
    return ApiError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")


def internal_server_error() -> ApiError:
    return ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")


def no_auth() -> ApiError:
    return ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")


def method_not_found() -> ApiError:
    # Doc: api-reference/rest-v3.md (404 ERROR_METHOD_NOT_FOUND); text as portals send it.
    return ApiError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def bad_request(description: str, code: str = "") -> ApiError:
    """Method-level validation error: HTTP 400, often with an empty code (crm.deal.get & co)."""
    return ApiError(400, code, description)


FAULT_ERRORS = {503: query_limit_exceeded, 500: internal_server_error, 429: operation_time_limit}


def fault_error(status: int) -> ApiError:
    """The documented body for a scripted fault status; other statuses get a generic body."""
    make = FAULT_ERRORS.get(status)
    if make is not None:
        return make()
    if status == 401:
        return ApiError(401, "expired_token", "The access token provided has expired")
    return ApiError(status, "ERROR_UNEXPECTED_ANSWER", "Server returned an unexpected response")


# ---- request parameters -------------------------------------------------------------------


def _pairs(query: str) -> list[tuple[str, str]]:
    """`parse_qsl(query, keep_blank_values=True)`, faster on long id lists: keys repeat, so their
    decoding is cached, and values without `%` or `+` are taken as they are."""
    out = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        out.append((_unquote_key(key), value))
    return out


@functools.lru_cache(maxsize=8192)
def _unquote_key(key: str) -> str:
    return unquote(key.replace("+", " "))


def parse_php_query(query: str) -> dict:
    """Parse `a[b][]=1&c[0]=x` into nested dicts the way PHP's parse_str does.

    Lists come back as dicts with "0", "1"... keys (PHP arrays); `as_list` flattens them.
    Doc: settings/how-to-call-rest-api/data-encoding.md
    """
    out: dict = {}
    for raw_key, value in _pairs(query):
        if not raw_key:
            continue
        path = key_path(raw_key)
        node = out
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":  # `key[]`: next free numeric index
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[part] = value
            else:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
    return out


def as_list(value) -> list:
    """A PHP array (dict with numeric keys), a list or a scalar, as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def as_dict(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def ci_get(params: dict, name: str, default=None):
    """Top-level keys of legacy methods are matched case-insensitively (FILTER / filter)."""
    if name in params:
        return params[name]
    low = name.lower()
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == low:
            return value
    return default


def as_int(value, default: int | None = None) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        try:
            f = float(str(value).strip())
        except (TypeError, ValueError):
            return default
        return int(f) if f.is_integer() else default


def as_float(value, default: float | None = None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip().replace(",", "."))
    except (TypeError, ValueError):
        return default


def as_yn(value) -> bool:
    """Bitrix Y/N flags; also accepts booleans and 1/0 ("true" from fast-bitrix24 batches)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().upper() in ("Y", "1", "TRUE")


# ---- portal dates -------------------------------------------------------------------------

_SITE_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def parse_datetime(value) -> int | None:
    """A filter or field value as a unix time; ISO 8601 with or without offset, a plain
    `YYYY-MM-DD`, or the site format `DD.MM.YYYY [HH:MM[:SS]]`. Naive values are portal time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        m = _SITE_DATE.match(text)
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        else:
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            try:
                dt = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
            except ValueError:
                return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=PORTAL_TZ)
    return int(dt.timestamp())


def iso(ts: int | None) -> str | None:
    """Unix time as the portal writes it: ISO 8601 with the portal's offset."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, PORTAL_TZ).isoformat()


def iso_date(ts: int | None) -> str | None:
    """A date-only field (CLOSEDATE, BIRTHDATE): the portal's day, written as that day's UTC midnight in
    the portal's offset - `2024-09-09T03:00:00+03:00` on a Moscow portal, `T02:00:00+02:00` on a +02 one.

    Doc: api-reference/crm/deals/crm-deal-get.md ("CLOSEDATE": "2024-09-09T02:00:00+02:00", type `date`),
    crm/quote/crm-quote-get.md ("CLOSEDATE": "2026-03-20T03:00:00+03:00"), crm/contacts/crm-contact-get.md
    (BIRTHDATE). Read in another time zone such a value falls on the day before: the day is its date part.
    """
    if ts is None:
        return None
    day = datetime.fromtimestamp(ts, PORTAL_TZ).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC).astimezone(PORTAL_TZ).isoformat()


def day_start(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=PORTAL_TZ).timestamp())


def day_floor(ts: int) -> int:
    """Midnight (portal time) of the day holding unix time `ts`."""
    return ts - (ts + 3 * 3600) % 86400


def local_ts(dt: datetime) -> int:
    """A naive shop datetime, read as portal time."""
    return int(dt.replace(tzinfo=PORTAL_TZ).timestamp())


def now_ts() -> int:
    return int(time.time())


def time_block(start: float, finish: float, operating: float | None, reset_at: int | None,
               processing: float | None = None) -> dict:
    """The `time` object of every success. Doc: api-reference/data-types.md#time"""
    block = {
        "start": round(start, 6),
        "finish": round(finish, 6),
        "duration": round(finish - start, 6),
        "processing": round(processing if processing is not None else finish - start, 6),
        "date_start": datetime.fromtimestamp(start, PORTAL_TZ).replace(microsecond=0).isoformat(),
        "date_finish": datetime.fromtimestamp(finish, PORTAL_TZ).replace(microsecond=0).isoformat(),
    }
    if operating is not None:
        block["operating_reset_at"] = reset_at if reset_at is not None else int(finish) + 600
        block["operating"] = round(operating, 6)
    return block
