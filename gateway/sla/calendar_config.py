"""Parsing and validation of business-hours calendar configuration.

Pure functions turning one mapping of ``conf/calendars.yaml`` into a
:class:`CalendarSpec`; :class:`gateway.sla.calendars.Calendar` is built from that.
See ``docs/calendars.md`` for the format.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.schema import REQUIRED, Key

__all__ = ["CALENDAR", "CalendarError", "CalendarSpec", "parse_config", "DAY_KEYS"]


class CalendarError(ValueError):
    """Invalid calendar configuration or an impossible calendar request."""


DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The keys of one calendar. parse_config checks the values itself (times, dates, zones), with
# messages that name the calendar and the key.
CALENDAR = {
    "timezone": Key(str, REQUIRED, "IANA time zone name; deadlines are counted in it",
                    example="Europe/Berlin"),
    "working_hours": Key(dict, dict, "weekday -> working intervals; a day not given is off",
                         keys={day: Key((list, str), None, "intervals 'HH:MM-HH:MM' (24:00 "
                                                           "ends a day)",
                                        example=["08:00-17:00"] if day in DAY_KEYS[:5]
                                        else None) for day in DAY_KEYS}),
    "holidays": Key(list, list, "yearly holidays 'MM-DD'"),
    "one_time_holidays": Key(list, list, "one-off holidays 'YYYY-MM-DD'"),
    "extra_working_days": Key((dict, list), dict, "date -> intervals or a weekday name whose "
                                                  "hours apply; or a list of dates"),
    "country": Key(str, None, "ISO 3166 code: that country's public holidays are off too"),
    "subdivision": Key((str, int), None, "state or province within country, e.g. BY"),
}

# A wall-clock interval is (start_minute, end_minute) from local midnight, end <= 1440.
Interval = tuple[int, int]

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_MMDD_RE = re.compile(r"^(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class CalendarSpec:
    name: str
    tz: ZoneInfo
    weekly: tuple[tuple[Interval, ...], ...]          # index 0 = Monday
    yearly_holidays: frozenset[tuple[int, int]] = frozenset()   # (month, day)
    one_time_holidays: frozenset[_dt.date] = frozenset()
    extra_days: dict[_dt.date, tuple[Interval, ...]] = field(default_factory=dict)
    country: str | None = None
    subdivision: str | None = None


def _err(name: str, key: str, msg: str) -> CalendarError:
    return CalendarError(f"calendar {name!r}: {key}: {msg}")


def _parse_time(name: str, key: str, text: str, *, is_end: bool) -> int:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise _err(name, key, f"bad time {text!r} (expected HH:MM)")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and (mi != 0 or not is_end)):
        raise _err(name, key, f"bad time {text!r} (hours 00-23, minutes 00-59; "
                              f"24:00 only as an end time)")
    return h * 60 + mi


def _parse_intervals(name: str, key: str, value) -> tuple[Interval, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise _err(name, key, f"expected a list of 'HH:MM-HH:MM' strings, got {value!r}")
    out: list[Interval] = []
    for i, item in enumerate(value):
        ikey = f"{key}[{i}]"
        if not isinstance(item, str) or item.count("-") != 1:
            raise _err(name, ikey, f"expected 'HH:MM-HH:MM', got {item!r}")
        a, b = item.split("-")
        s = _parse_time(name, ikey, a, is_end=False)
        e = _parse_time(name, ikey, b, is_end=True)
        if e <= s:
            raise _err(name, ikey, f"end before start in {item!r}")
        out.append((s, e))
    out.sort()
    merged: list[Interval] = []
    for s, e in out:
        if merged and s < merged[-1][1]:
            p = merged[-1]
            raise _err(name, key, "overlapping intervals "
                       f"{_fmt(p)} and {_fmt((s, e))}")
        if merged and s == merged[-1][1]:       # touching: merge
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return tuple(merged)


def _fmt(iv: Interval) -> str:
    return "%02d:%02d-%02d:%02d" % (iv[0] // 60, iv[0] % 60, iv[1] // 60, iv[1] % 60)


def _parse_date(name: str, key: str, value) -> _dt.date:
    # PyYAML turns unquoted 2026-12-24 into a datetime.date already.
    if isinstance(value, _dt.datetime):
        raise _err(name, key, f"expected a date, got a date-time {value!r}")
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _err(name, key, f"bad date {value!r} (expected YYYY-MM-DD)")


def _as_list(name: str, key: str, value) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise _err(name, key, f"expected a list, got {value!r}")
    return list(value)


def parse_config(name: str, data) -> CalendarSpec:
    """Validate one calendar mapping; raise :class:`CalendarError` naming the key."""
    if not isinstance(data, dict):
        raise CalendarError(f"calendar {name!r}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in CALENDAR)
    if unknown:
        raise _err(name, unknown[0], f"unknown key (allowed: {', '.join(sorted(CALENDAR))})")

    # timezone (required: a silently wrong zone would shift every deadline)
    tzname = data.get("timezone")
    if not isinstance(tzname, str) or not tzname:
        raise _err(name, "timezone", f"required, an IANA zone name like 'Europe/Berlin' (got {tzname!r})")
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _err(name, "timezone", f"unknown timezone {tzname!r}") from None

    # weekly working hours
    wh = data.get("working_hours")
    if wh is None:
        wh = {}
    if not isinstance(wh, dict):
        raise _err(name, "working_hours", f"expected a mapping mon..sun -> intervals, got {wh!r}")
    for k in wh:
        if k not in DAY_KEYS:
            raise _err(name, f"working_hours.{k}", f"unknown day (use {', '.join(DAY_KEYS)})")
    weekly = tuple(_parse_intervals(name, f"working_hours.{d}", wh.get(d)) for d in DAY_KEYS)
    if not any(weekly):
        raise _err(name, "working_hours", "no working time on any weekday; a calendar "
                   "without working time would never reach a deadline")

    # yearly holidays MM-DD
    yearly: set[tuple[int, int]] = set()
    for i, item in enumerate(_as_list(name, "holidays", data.get("holidays"))):
        key = f"holidays[{i}]"
        m = _MMDD_RE.match(item) if isinstance(item, str) else None
        if not m:
            hint = " (one-off dates belong in one_time_holidays)" if isinstance(item, _dt.date) or (
                isinstance(item, str) and re.match(r"^\d{4}-", item)) else ""
            raise _err(name, key, f"bad yearly holiday {item!r}, expected 'MM-DD'{hint}")
        mo, dd = int(m.group(1)), int(m.group(2))
        try:
            _dt.date(2000, mo, dd)          # leap year: accepts 02-29
        except ValueError:
            raise _err(name, key, f"no such day {item!r}") from None
        yearly.add((mo, dd))

    once = {_parse_date(name, f"one_time_holidays[{i}]", v)
            for i, v in enumerate(_as_list(name, "one_time_holidays", data.get("one_time_holidays")))}

    # extra working days: mapping date -> intervals | weekday name, or a list of dates
    extra: dict[_dt.date, tuple[Interval, ...]] = {}
    ewd = data.get("extra_working_days")
    if ewd is None:
        ewd = {}
    if isinstance(ewd, (list, tuple)):
        items = [(v, None, f"extra_working_days[{i}]") for i, v in enumerate(ewd)]
    elif isinstance(ewd, dict):
        items = [(k, v, f"extra_working_days.{k}") for k, v in ewd.items()]
    else:
        raise _err(name, "extra_working_days", f"expected a mapping or a list, got {ewd!r}")
    for raw_day, value, key in items:
        day = _parse_date(name, key, raw_day)
        if value is None:
            ivs = weekly[day.weekday()]
            if not ivs:
                raise _err(name, key, f"{day} is a {DAY_KEYS[day.weekday()]} which has no "
                           "working hours; give the hours or a weekday name, "
                           "e.g. {'%s': ['08:00-17:00']} or {'%s': mon}" % (day, day))
        elif isinstance(value, str) and value.strip().lower() in DAY_KEYS:
            ivs = weekly[DAY_KEYS.index(value.strip().lower())]
            if not ivs:
                raise _err(name, key, f"{value!r} has no working hours")
        else:
            ivs = _parse_intervals(name, key, value)
            if not ivs:
                raise _err(name, key, "an extra working day needs at least one interval")
        if day in once:
            raise _err(name, key, f"{day} is also listed in one_time_holidays")
        if day in extra:
            raise _err(name, key, f"{day} listed twice")
        extra[day] = ivs

    # country holidays via the `holidays` package
    country = data.get("country")
    subdiv = data.get("subdivision")
    if country is not None:
        if country is False:
            raise _err(name, "country", "got boolean false: YAML reads NO as false, quote it: 'NO'")
        if not isinstance(country, str) or not country:
            raise _err(name, "country", f"expected an ISO 3166 code like 'DE', got {country!r}")
    if subdiv is not None:
        if country is None:
            raise _err(name, "subdivision", "needs country")
        if not isinstance(subdiv, (str, int)) or isinstance(subdiv, bool):
            raise _err(name, "subdivision", f"expected a code like 'BY', got {subdiv!r}")
        subdiv = str(subdiv)
    if country is not None:
        import holidays as _holidays  # start-up time: the holidays package is large
        try:
            _holidays.country_holidays(country, subdiv=subdiv, years=[])
        except NotImplementedError as exc:
            key = "subdivision" if subdiv is not None and "subdivision" in str(exc) else "country"
            raise _err(name, key, f"unknown to the holidays package: {exc}") from None

    return CalendarSpec(name=name, tz=tz, weekly=weekly, yearly_holidays=frozenset(yearly),
                        one_time_holidays=frozenset(once), extra_days=extra,
                        country=country, subdivision=subdiv)
