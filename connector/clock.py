"""The product's one "today": every plan, sync, report and seeded shop asks here.

`RS_TODAY=YYYY-MM-DD` overrides it, to reproduce a run of another day (a Sunday, a holiday) or to
pin tests to a date. Only the calendar day is overridden: token expiry, rate limits and timeouts keep
the real clock, so a pinned day never makes a token look fresh or a bucket look empty.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.errors import SettingsError

OVERRIDE_ENV = "RS_TODAY"


def today(timezone: str | None = None) -> date:
    """Today's date in `timezone` (the machine's when None), or the `RS_TODAY` override."""
    pinned = os.environ.get(OVERRIDE_ENV, "").strip()
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            raise SettingsError(OVERRIDE_ENV, f"not a date: {pinned!r}",
                                hint="use YYYY-MM-DD, e.g. RS_TODAY=2027-01-03, or unset it") from None
    if not timezone:
        return date.today()
    try:
        return datetime.now(ZoneInfo(timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError("TIMEZONE", f"unknown time zone {timezone!r}",
                            hint="use an IANA name such as Europe/Moscow") from None
