"""Working-time (business hours) arithmetic.

A :class:`Calendar` knows weekly wall-clock working hours in one time zone, yearly
and one-time holidays, optional country holidays (``holidays`` package) and
one-off extra working days.  All arithmetic is done on integer UTC epoch seconds:

* every local date is turned once into its working intervals in UTC (exact across
  DST: the set of instants whose *local wall time* lies in a configured interval;
  a skipped wall time contributes nothing, a repeated one counts twice);
* every year gets a prefix sum of per-day working seconds, so ``add``/``between``
  cost a binary search per year touched instead of a walk.

Precision: instants are truncated to whole seconds. ``add`` is exact to the
second (a start of 12:25:30 plus 60 minutes ends at hh:25:30 working time later);
``between`` returns ``working_seconds // 60`` (whole minutes, floored).
Naive datetimes are taken as UTC; results are UTC-aware datetimes.

``SECTION`` (the end of this file) loads conf/calendars.yaml into ``config.calendars``.
"""
from __future__ import annotations

import bisect
import datetime as _dt
from datetime import timezone

from gateway.sla.calendar_config import CALENDAR, CalendarError, CalendarSpec, parse_config
from gateway.config import ConfigError, ConfigSection, Problem
from gateway.config.schema import Key
from gateway.config.yamlload import LineDict, load_yaml

__all__ = ["Calendar", "CalendarError", "MAX_YEARS", "SECTION"]

MAX_YEARS = 100          # add/next_working/between never look further than this
_UTC = timezone.utc
_EPOCH_DATE = _dt.date(1970, 1, 1)


def _to_epoch(instant: _dt.datetime) -> int:
    if not isinstance(instant, _dt.datetime):
        raise TypeError(f"expected a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        instant = instant.replace(tzinfo=_UTC)
    d = instant - _dt.datetime(1970, 1, 1, tzinfo=_UTC)
    return d.days * 86400 + d.seconds          # drops microseconds (floor)


def _from_epoch(u: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_UTC) + _dt.timedelta(seconds=u)


def _wall_seconds(d: _dt.date, minute: int) -> int:
    """Local wall time as 'seconds since epoch' pretending the wall clock were UTC."""
    return ((d - _EPOCH_DATE).days * 1440 + minute) * 60


class Calendar:
    """Business-hours calendar. Build with :meth:`from_config`."""

    def __init__(self, spec: CalendarSpec):
        self.spec = spec
        self.name = spec.name
        self.tz = spec.tz
        self._days: dict[_dt.date, tuple[tuple[int, int], ...]] = {}
        self._years: dict[int, list[int]] = {}           # year -> prefix sums per day
        self._country_years: dict[int, frozenset[_dt.date]] = {}
        self._country_obj = None

    @classmethod
    def from_config(cls, name: str, data: dict) -> "Calendar":
        return cls(parse_config(name, data))

    def __repr__(self) -> str:
        return f"<Calendar {self.name!r} {self.tz.key}>"

    # ------------------------------------------------------------------ days
    def _offset(self, u: int) -> int:
        return int(_from_epoch(u).astimezone(self.tz).utcoffset().total_seconds())

    def _wall_offsets(self, wall: int) -> tuple[int, int]:
        naive = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=wall)
        o0 = naive.replace(tzinfo=self.tz, fold=0).utcoffset()
        o1 = naive.replace(tzinfo=self.tz, fold=1).utcoffset()
        return int(o0.total_seconds()), int(o1.total_seconds())

    def _country_holidays(self, year: int) -> frozenset[_dt.date]:
        got = self._country_years.get(year)
        if got is None:
            import holidays as _holidays    # on first use: the package takes ~75 ms to import
            got = frozenset(_holidays.country_holidays(
                self.spec.country, subdiv=self.spec.subdivision, years=year).keys())
            self._country_years[year] = got
        return got

    def wall_intervals(self, d: _dt.date) -> tuple[tuple[int, int], ...]:
        """Configured wall-clock intervals (minutes from midnight) for local date ``d``."""
        spec = self.spec
        extra = spec.extra_days.get(d)
        if extra is not None:
            return extra
        if (d in spec.one_time_holidays or (d.month, d.day) in spec.yearly_holidays
                or (spec.country and d in self._country_holidays(d.year))):
            return ()
        return spec.weekly[d.weekday()]

    def _day(self, d: _dt.date) -> tuple[tuple[int, int], ...]:
        """Working intervals of local date ``d`` as sorted, disjoint UTC epoch seconds."""
        got = self._days.get(d)
        if got is not None:
            return got
        walls = self.wall_intervals(d)
        if not walls:
            self._days[d] = ()
            return ()
        day0 = _wall_seconds(d, 0)
        a0, a1 = self._wall_offsets(day0)
        b0, b1 = self._wall_offsets(day0 + 86400)
        if a0 == a1 == b0 == b1:              # no transition touches this day
            out = tuple((day0 + s * 60 - a0, day0 + e * 60 - a0) for s, e in walls)
        else:
            pieces: list[tuple[int, int]] = []
            for s, e in walls:
                pieces.extend(self._convert_exact(day0 + s * 60, day0 + e * 60))
            pieces.sort()
            merged: list[tuple[int, int]] = []
            for s, e in pieces:
                if merged and s <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
                else:
                    merged.append((s, e))
            out = tuple(merged)
        self._days[d] = out
        return out

    def _convert_exact(self, ws: int, we: int) -> list[tuple[int, int]]:
        """UTC instants whose wall time lies in [ws, we), around DST transitions."""
        offs = self._wall_offsets(ws) + self._wall_offsets(we)
        lo, hi = ws - max(offs), we - min(offs)
        # split [lo, hi) into runs of constant UTC offset (binary search per transition)
        cuts = [lo]
        cur = self._offset(lo)
        runs_off = [cur]
        while self._offset(hi) != cur:     # (at most a few transitions per day)
            a, b = cuts[-1], hi              # offset(a) == cur != offset(b)
            while b - a > 1:
                m = (a + b) // 2
                if self._offset(m) == cur:
                    a = m
                else:
                    b = m
            cuts.append(b)
            cur = self._offset(b)
            runs_off.append(cur)
        cuts.append(hi)
        out = []
        for i, off in enumerate(runs_off):
            s = max(ws - off, cuts[i])
            e = min(we - off, cuts[i + 1])
            if s < e:
                out.append((s, e))
        return out

    def _local_date(self, u: int) -> _dt.date:
        return _from_epoch(u).astimezone(self.tz).date()

    def _year(self, year: int) -> list[int]:
        """Prefix sums: cum[i] = working seconds of days 0..i-1 of ``year`` (local dates)."""
        cum = self._years.get(year)
        if cum is None:
            d = _dt.date(year, 1, 1)
            n = (_dt.date(year + 1, 1, 1) - d).days if year < 9999 else 365
            cum = [0] * (n + 1)
            total = 0
            one = _dt.timedelta(days=1)
            for i in range(n):
                for s, e in self._day(d):
                    total += e - s
                cum[i + 1] = total
                d += one
            self._years[year] = cum
        return cum

    def _check_year(self, year: int, origin: int, what: str) -> None:
        if year > origin + MAX_YEARS or year >= 9999:
            raise CalendarError(f"calendar {self.name!r}: {what} goes more than "
                                f"{MAX_YEARS} years ahead")

    # ---------------------------------------------------------------- public
    def is_working(self, instant: _dt.datetime) -> bool:
        u = _to_epoch(instant)
        return any(s <= u < e for s, e in self._day(self._local_date(u)))

    def next_working(self, instant: _dt.datetime) -> _dt.datetime:
        """``instant`` itself (as UTC) if it is working time, else the next start of work."""
        return _from_epoch(self._next_working(_to_epoch(instant)))

    def _next_working(self, u: int) -> int:
        d = self._local_date(u)
        for s, e in self._day(d):
            if u < e:
                return max(s, u)
        origin = d.year
        d += _dt.timedelta(days=1)
        while True:
            self._check_year(d.year, origin, "next_working")
            cum = self._year(d.year)
            i = d.timetuple().tm_yday - 1
            if cum[-1] > cum[i]:
                k = bisect.bisect_right(cum, cum[i], lo=i + 1) - 1
                return self._day(d + _dt.timedelta(days=k - i))[0][0]
            d = _dt.date(d.year + 1, 1, 1)

    def add(self, start: _dt.datetime, minutes: int) -> _dt.datetime:
        """Instant at which ``minutes`` working minutes have elapsed after ``start``.

        Counting starts at the next working instant.  ``minutes == 0`` returns
        :meth:`next_working` of ``start``.  An end that falls exactly on the end of
        a working interval returns that end (e.g. 17:00), not the next morning.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise TypeError(f"minutes must be an int, got {minutes!r}")
        return self.add_seconds(start, minutes * 60)

    def add_seconds(self, start: _dt.datetime, seconds: int) -> _dt.datetime:
        """Like :meth:`add` with a number of working seconds."""
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError(f"seconds must be an int, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"cannot add a negative working time ({seconds} s)")
        if seconds > (MAX_YEARS + 1) * 366 * 86400:
            raise CalendarError(f"calendar {self.name!r}: adding {seconds} s of working "
                                f"time goes more than {MAX_YEARS} years ahead")
        u = _to_epoch(start)
        if seconds == 0:
            return _from_epoch(self._next_working(u))
        rest = seconds
        d = self._local_date(u)
        for s, e in self._day(d):
            if e <= u:
                continue
            s = max(s, u)
            if rest <= e - s:
                return _from_epoch(s + rest)
            rest -= e - s
        origin = d.year
        d += _dt.timedelta(days=1)
        while True:
            self._check_year(d.year, origin, "add")
            cum = self._year(d.year)
            i = d.timetuple().tm_yday - 1
            avail = cum[-1] - cum[i]
            if rest > avail:
                rest -= avail
                d = _dt.date(d.year + 1, 1, 1)
                continue
            j = bisect.bisect_left(cum, cum[i] + rest, lo=i + 1)   # day j-1 completes it
            rest -= cum[j - 1] - cum[i]
            for s, e in self._day(d + _dt.timedelta(days=j - 1 - i)):
                if rest <= e - s:
                    return _from_epoch(s + rest)
                rest -= e - s
            raise AssertionError("prefix sums and day intervals disagree")  # pragma: no cover

    def between(self, a: _dt.datetime, b: _dt.datetime) -> int:
        """Whole working minutes in [a, b): ``between_seconds(a, b) // 60``; 0 if b <= a."""
        return self.between_seconds(a, b) // 60

    def between_seconds(self, a: _dt.datetime, b: _dt.datetime) -> int:
        """Working seconds in [a, b); 0 if b <= a."""
        ua, ub = _to_epoch(a), _to_epoch(b)
        if ub <= ua:
            return 0
        da, db = self._local_date(ua), self._local_date(ub)
        if da == db:
            return sum(max(0, min(e, ub) - max(s, ua)) for s, e in self._day(da))
        if db.year - da.year > MAX_YEARS:
            raise CalendarError(f"calendar {self.name!r}: between spans more than "
                                f"{MAX_YEARS} years")
        return self._cum_at(ub, db) - self._cum_at(ua, da) + sum(
            self._year(y)[-1] for y in range(da.year, db.year))

    def _cum_at(self, u: int, d: _dt.date) -> int:
        """Working seconds from the start of local year ``d.year`` up to ``u``."""
        cum = self._year(d.year)
        i = d.timetuple().tm_yday - 1
        return cum[i] + sum(max(0, min(e, u) - s) for s, e in self._day(d))


# ---- conf/calendars.yaml ---------------------------------------------------------------------
def _around_the_clock() -> dict[str, Calendar]:
    week = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return {"default": Calendar.from_config("default", {"timezone": "UTC",
                                                        "working_hours": week})}


def load_calendars(config, problems: list[Problem]) -> None:
    """``config.calendars`` from conf/calendars.yaml (without the file: one calendar
    'default', around the clock, UTC); then every queue's calendar must be one of them."""
    path = config.dir / "calendars.yaml"
    config.calendars = calendars = {}
    if not path.exists():
        config.calendars = calendars = _around_the_clock()
    else:
        config.files.append(path)
        try:
            raw = load_yaml(path, str(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
            return      # no cascade of "unknown calendar" errors after a syntax error
        if not isinstance(raw, dict):
            problems.append(Problem(getattr(raw, "file", str(path)), 1,
                                    "calendars.yaml must map calendar names to settings"))
            return
        for name, data in raw.items():
            try:
                calendars[str(name)] = Calendar.from_config(str(name), data or {})
            except ValueError as exc:
                line = data.line if isinstance(data, LineDict) else raw.line_of(name)
                problems.append(Problem(raw.file, line, f"calendar {name!r}: {exc}"))
        if "default" not in calendars and not any(
                p.message.startswith("calendar 'default'") for p in problems):
            problems.append(Problem(raw.file, 1, "calendars.yaml needs a calendar named "
                                                 "'default'"))
    for queue in config.queues.values():
        if calendars and queue.calendar not in calendars:
            where = queue.source
            problems.append(Problem(getattr(where, "file", "queues.yaml"),
                                    where.line_of("calendar") if isinstance(where, LineDict)
                                    else 0,
                                    f"queue {queue.name!r}: unknown calendar "
                                    f"{queue.calendar!r}"))


SECTION = ConfigSection("calendars", load_calendars, keys=(
    ("calendars.yaml", Key(dict, dict, "calendar name -> settings; queues and SLAs name them",
                           each=CALENDAR, item="calendar", example="default")),))
