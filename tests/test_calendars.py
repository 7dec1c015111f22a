"""gateway.sla.calendars: hand-checked tables plus property tests against a naive
minute-walk reference implemented here (independent of the library)."""
from __future__ import annotations

import datetime as dt
from datetime import timezone

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from zoneinfo import ZoneInfo

from gateway.sla.calendars import MAX_YEARS, Calendar, CalendarError

UTC = timezone.utc
BER = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
LHI = ZoneInfo("Australia/Lord_Howe")
SP = ZoneInfo("America/Sao_Paulo")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALLDAYS = WEEKDAYS + ("sat", "sun")

BERLIN = {
    "timezone": "Europe/Berlin",
    "working_hours": {d: ["08:00-12:00", "13:00-17:00"] for d in WEEKDAYS},
    "holidays": ["12-25", "12-26", "01-01"],
    "one_time_holidays": ["2026-12-24"],
}
NEWYORK = {"timezone": "America/New_York",
           "working_hours": {d: ["09:00-17:00"] for d in WEEKDAYS}}


def cal(data=None, **over) -> Calendar:
    data = dict(BERLIN if data is None else data)
    data.update(over)
    return Calendar.from_config("test", data)


def B(*a) -> dt.datetime:
    return dt.datetime(*a, tzinfo=BER)


def full_week(tz: str) -> dict:
    return {"timezone": tz, "working_hours": {d: ["00:00-24:00"] for d in ALLDAYS}}


def sunday_only(tz: str, *intervals: str) -> dict:
    return {"timezone": tz, "working_hours": {"sun": list(intervals)}}


# --------------------------------------------------------------------------- add
# (label, config, start, minutes, expected end) -- hand-computed
ADD_CASES = [
    ("same morning", BERLIN, B(2026, 11, 23, 9, 0), 60, B(2026, 11, 23, 10, 0)),
    ("over lunch", BERLIN, B(2026, 11, 23, 11, 30), 60, B(2026, 11, 23, 13, 30)),
    ("ends exactly at lunch", BERLIN, B(2026, 11, 23, 11, 0), 60, B(2026, 11, 23, 12, 0)),
    ("ends exactly at close", BERLIN, B(2026, 11, 23, 16, 0), 60, B(2026, 11, 23, 17, 0)),
    ("start in lunch", BERLIN, B(2026, 11, 23, 12, 30), 30, B(2026, 11, 23, 13, 30)),
    ("over the weekend", BERLIN, B(2026, 11, 27, 16, 30), 60, B(2026, 11, 30, 8, 30)),
    ("start before opening", BERLIN, B(2026, 11, 23, 6, 0), 30, B(2026, 11, 23, 8, 30)),
    ("start Saturday", BERLIN, B(2026, 11, 28, 10, 0), 1, B(2026, 11, 30, 8, 1)),
    ("start after close", BERLIN, B(2026, 11, 23, 20, 0), 240, B(2026, 11, 24, 12, 0)),
    ("whole week = 40 h", BERLIN, B(2026, 11, 23, 8, 0), 2400, B(2026, 11, 27, 17, 0)),
    ("seconds kept", BERLIN, B(2026, 11, 23, 11, 59, 30), 1, B(2026, 11, 23, 13, 0, 30)),
    # Dec 23 (Wed) 16:00: 60 min; 24th one-time holiday; 25th/26th yearly; 27th Sunday
    ("Christmas", BERLIN, B(2026, 12, 23, 16, 0), 120, B(2026, 12, 28, 9, 0)),
    ("created on holiday 23:59", BERLIN, B(2026, 12, 25, 23, 59), 60, B(2026, 12, 28, 9, 0)),
    # Dec 30 (Wed) 60 + Dec 31 480 = 540; Jan 1 holiday; weekend; Mon Jan 4 +60
    ("year boundary", BERLIN, B(2026, 12, 30, 16, 0), 600, B(2027, 1, 4, 9, 0)),
    ("one-time holiday only that year", BERLIN, B(2027, 12, 23, 16, 0), 120,
     B(2027, 12, 24, 9, 0)),
    # DST: wall-clock hours hold on both sides of the switch
    ("Berlin DST start, weekend span", BERLIN, B(2026, 3, 27, 16, 0), 120,
     dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),          # Mon 09:00 CEST
    ("Berlin DST end, weekend span", BERLIN, B(2026, 10, 23, 16, 0), 120,
     dt.datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),         # Mon 09:00 CET
    ("Berlin 8-17 on the DST Sunday", sunday_only("Europe/Berlin", "08:00-17:00"),
     B(2026, 3, 29, 8, 0), 540, dt.datetime(2026, 3, 29, 15, 0, tzinfo=UTC)),
    ("Berlin 24h Sunday of 23 h", full_week("Europe/Berlin"), B(2026, 3, 29, 0, 0), 23 * 60,
     B(2026, 3, 30, 0, 0)),
    ("Berlin 24h Sunday of 25 h", full_week("Europe/Berlin"), B(2026, 10, 25, 0, 0), 24 * 60,
     dt.datetime(2026, 10, 25, 23, 0, tzinfo=BER)),
    ("New York DST start", NEWYORK, dt.datetime(2026, 3, 6, 16, 0, tzinfo=NY), 120,
     dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)),          # Mon 10:00 EDT
    ("New York DST end", NEWYORK, dt.datetime(2026, 10, 30, 16, 0, tzinfo=NY), 120,
     dt.datetime(2026, 11, 2, 15, 0, tzinfo=UTC)),         # Mon 10:00 EST
    ("New York 24h Sunday of 25 h", full_week("America/New_York"),
     dt.datetime(2026, 11, 1, 0, 0, tzinfo=NY), 1500, dt.datetime(2026, 11, 2, 0, 0, tzinfo=NY)),
    # Lord Howe: +11 -> +10:30 on 2026-04-05 at 02:00 (01:30-02:00 happens twice)
    ("Lord Howe 24h day of 24.5 h", full_week("Australia/Lord_Howe"),
     dt.datetime(2026, 4, 5, 0, 0, tzinfo=LHI), 1470, dt.datetime(2026, 4, 6, 0, 0, tzinfo=LHI)),
    ("Lord Howe 24h day of 23.5 h", full_week("Australia/Lord_Howe"),
     dt.datetime(2026, 10, 4, 0, 0, tzinfo=LHI), 1410, dt.datetime(2026, 10, 5, 0, 0, tzinfo=LHI)),
    ("naive start = UTC", BERLIN, dt.datetime(2026, 11, 23, 8, 0), 30,
     dt.datetime(2026, 11, 23, 8, 30, tzinfo=UTC)),        # 09:00 CET + 30
]


@pytest.mark.parametrize("label,data,start,minutes,expected", ADD_CASES,
                         ids=[c[0] for c in ADD_CASES])
def test_add(label, data, start, minutes, expected):
    c = cal(data)
    got = c.add(start, minutes)
    assert got == expected
    assert got.tzinfo is UTC
    assert c.between(start, got) == minutes


@pytest.mark.parametrize("start,expected", [
    (B(2026, 11, 28, 10, 0), B(2026, 11, 30, 8, 0)),     # Saturday -> Monday
    (B(2026, 11, 23, 12, 15), B(2026, 11, 23, 13, 0)),   # lunch
    (B(2026, 11, 23, 9, 17, 5), B(2026, 11, 23, 9, 17, 5)),   # already working: unchanged
    (B(2026, 11, 23, 17, 0), B(2026, 11, 24, 8, 0)),     # interval end is exclusive
    (B(2026, 12, 23, 17, 0), B(2026, 12, 28, 8, 0)),     # Christmas block
])
def test_add_zero_and_next_working(start, expected):
    c = cal()
    assert c.add(start, 0) == expected
    assert c.next_working(start) == expected
    assert c.is_working(expected)


# ----------------------------------------------------------------------- between
BETWEEN_CASES = [
    ("reversed", BERLIN, B(2026, 11, 24, 9, 0), B(2026, 11, 23, 9, 0), 0),
    ("equal", BERLIN, B(2026, 11, 24, 9, 0), B(2026, 11, 24, 9, 0), 0),
    ("lunch excluded", BERLIN, B(2026, 11, 23, 11, 0), B(2026, 11, 23, 14, 0), 120),
    ("weekend excluded", BERLIN, B(2026, 11, 27, 16, 0), B(2026, 11, 30, 9, 0), 120),
    ("full month Nov 2026", BERLIN, B(2026, 11, 1), B(2026, 12, 1), 21 * 480),
    ("Christmas to New Year", BERLIN, B(2026, 12, 23), B(2027, 1, 2), 5 * 480),  # 23,28-31
    ("floors seconds", BERLIN, B(2026, 11, 23, 9, 0, 0), B(2026, 11, 23, 9, 1, 59), 1),
    ("partial minutes add up", BERLIN, B(2026, 11, 23, 9, 0, 30), B(2026, 11, 23, 9, 2, 0), 1),
    ("Berlin DST Sunday 23 h", full_week("Europe/Berlin"), B(2026, 3, 29), B(2026, 3, 30), 1380),
    ("Berlin DST Sunday 25 h", full_week("Europe/Berlin"), B(2026, 10, 25), B(2026, 10, 26), 1500),
    ("Berlin 01-04 skipped hour", sunday_only("Europe/Berlin", "01:00-04:00"),
     B(2026, 3, 29), B(2026, 3, 30), 120),
    ("Berlin 01-04 repeated hour", sunday_only("Europe/Berlin", "01:00-04:00"),
     B(2026, 10, 25), B(2026, 10, 26), 240),
    # wall [00:00, 02:30): 00:00-02:30 CEST (150) + 02:00-02:30 CET (30)
    ("Berlin end inside repeated hour", sunday_only("Europe/Berlin", "00:00-02:30"),
     B(2026, 10, 25), B(2026, 10, 26), 180),
    ("Berlin start inside skipped hour", sunday_only("Europe/Berlin", "02:30-04:00"),
     B(2026, 3, 29), B(2026, 3, 30), 60),
    ("New York 24h Mar 8", full_week("America/New_York"),
     dt.datetime(2026, 3, 8, tzinfo=NY), dt.datetime(2026, 3, 9, tzinfo=NY), 1380),
    ("New York weekdays across DST", NEWYORK, dt.datetime(2026, 3, 6, 16, tzinfo=NY),
     dt.datetime(2026, 3, 9, 10, tzinfo=NY), 120),
    ("Lord Howe 01-03 repeated half hour", sunday_only("Australia/Lord_Howe", "01:00-03:00"),
     dt.datetime(2026, 4, 5, tzinfo=LHI), dt.datetime(2026, 4, 6, tzinfo=LHI), 150),
    # Sao Paulo 2018-11-04: midnight itself is skipped (00:00 -> 01:00)
    ("Sao Paulo 24h across a midnight gap", full_week("America/Sao_Paulo"),
     dt.datetime(2018, 11, 3, tzinfo=SP), dt.datetime(2018, 11, 5, tzinfo=SP), 47 * 60),
    ("Sao Paulo 00-02 on the gap day", sunday_only("America/Sao_Paulo", "00:00-02:00"),
     dt.datetime(2018, 11, 3, tzinfo=SP), dt.datetime(2018, 11, 5, tzinfo=SP), 60),
    ("Lord Howe 01-03 skipped half hour", sunday_only("Australia/Lord_Howe", "01:00-03:00"),
     dt.datetime(2026, 10, 4, tzinfo=LHI), dt.datetime(2026, 10, 5, tzinfo=LHI), 90),
]


@pytest.mark.parametrize("label,data,a,b,expected", BETWEEN_CASES,
                         ids=[c[0] for c in BETWEEN_CASES])
def test_between(label, data, a, b, expected):
    assert cal(data).between(a, b) == expected


def test_between_multi_year():
    c = cal()
    one = c.between(B(2026, 1, 1), B(2027, 1, 1))
    two = c.between(B(2026, 1, 1), B(2028, 1, 1))
    assert two == one + c.between(B(2027, 1, 1), B(2028, 1, 1))
    # 2026: 261 weekdays; off: Jan 1 (Thu), Dec 24 (Thu), Dec 25 (Fri); Dec 26 is Saturday
    assert one == (261 - 3) * 480


def test_is_working_in_repeated_and_skipped_hours():
    c = cal(sunday_only("Europe/Berlin", "00:00-02:30"))
    assert c.is_working(dt.datetime(2026, 10, 25, 2, 15, tzinfo=BER))            # CEST
    assert not c.is_working(dt.datetime(2026, 10, 25, 2, 45, tzinfo=BER))        # CEST
    assert c.is_working(dt.datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=BER))    # CET
    assert not c.is_working(dt.datetime(2026, 10, 25, 2, 45, fold=1, tzinfo=BER))
    c = cal(sunday_only("America/Sao_Paulo", "00:00-02:00"))
    assert c.next_working(dt.datetime(2018, 11, 3, 12, tzinfo=SP)) == \
        dt.datetime(2018, 11, 4, 3, 0, tzinfo=UTC)                           # 01:00 -02
    c = cal(sunday_only("Europe/Berlin", "02:30-04:00"))
    # 02:30 does not exist on 2026-03-29: work starts at the switch, 03:00 CEST
    assert c.next_working(B(2026, 3, 29, 0, 0)) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


# ------------------------------------------------------------------ config extras
def test_country_holidays_with_subdivision():
    start = B(2026, 1, 5, 16, 0)                            # Monday; Jan 6 = Epiphany in BY
    assert cal(country="DE", subdivision="BY").add(start, 120) == B(2026, 1, 7, 9, 0)
    assert cal(country="DE").add(start, 120) == B(2026, 1, 6, 9, 0)


def test_extra_working_days_mapping_list_and_weekday_name():
    start = B(2026, 12, 23, 16, 0)
    c = cal(extra_working_days={"2026-12-27": ["10:00-14:00"]})
    assert c.add(start, 120) == B(2026, 12, 27, 11, 0)
    c = cal(extra_working_days=["2026-12-25"])              # Friday's hours despite the holiday
    assert c.add(start, 120) == B(2026, 12, 25, 9, 0)
    c = cal(extra_working_days={dt.date(2026, 11, 28): "mon"})   # YAML date key
    assert c.add(B(2026, 11, 27, 16, 30), 60) == B(2026, 11, 28, 8, 30)


def test_yaml_dates_and_24_00_end():
    c = cal(one_time_holidays=[dt.date(2026, 11, 23)],
            working_hours={"mon": ["20:00-24:00"], "tue": ["00:00-02:00"]})
    assert c.add(B(2026, 11, 30, 23, 0), 120) == B(2026, 12, 1, 1, 0)   # runs over midnight
    assert c.next_working(B(2026, 11, 23, 12, 0)) == B(2026, 11, 24, 0, 0)


@pytest.mark.parametrize("over,message", [
    ({"colour": "red"}, "'test': colour: unknown key"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown timezone 'Mars/Olympus'"),
    ({"timezone": None}, "timezone: required"),
    ({"working_hours": {"mon": ["08:00-25:00"]}}, "working_hours.mon[0]: bad time '25:00'"),
    ({"working_hours": {"mon": ["8-12"]}}, "working_hours.mon[0]: bad time '8'"),
    ({"working_hours": {"mon": ["12:00-08:00"]}}, "working_hours.mon[0]: end before start"),
    ({"working_hours": {"mon": ["08:00-12:00", "11:00-13:00"]}},
     "working_hours.mon: overlapping intervals 08:00-12:00 and 11:00-13:00"),
    ({"working_hours": {"monday": ["08:00-12:00"]}}, "working_hours.monday: unknown day"),
    ({"working_hours": {"mon": "8"}}, "working_hours.mon[0]: expected 'HH:MM-HH:MM'"),
    ({"working_hours": {}}, "working_hours: no working time on any weekday"),
    ({"working_hours": {"sat": []}}, "working_hours: no working time"),
    ({"holidays": ["2026-12-25"]}, "holidays[0]: bad yearly holiday '2026-12-25', expected "
                                   "'MM-DD' (one-off dates belong in one_time_holidays)"),
    ({"holidays": ["02-30"]}, "holidays[0]: no such day '02-30'"),
    ({"one_time_holidays": ["2026-13-01"]}, "one_time_holidays[0]: bad date '2026-13-01'"),
    ({"extra_working_days": ["2026-11-28"]}, "extra_working_days[0]: 2026-11-28 is a sat"),
    ({"extra_working_days": {"2026-12-24": ["08:00-12:00"]}},
     "extra_working_days.2026-12-24: 2026-12-24 is also listed in one_time_holidays"),
    ({"country": "XX"}, "country: unknown to the holidays package"),
    ({"country": False}, "country: got boolean false"),
    ({"country": "DE", "subdivision": "ZZ"}, "subdivision: unknown to the holidays package"),
    ({"subdivision": "BY"}, "subdivision: needs country"),
])
def test_config_errors(over, message):
    with pytest.raises(CalendarError) as exc:
        cal(**over)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_config_must_be_mapping():
    with pytest.raises(CalendarError, match="expected a mapping"):
        Calendar.from_config("x", ["timezone"])


# -------------------------------------------------------------------- guards
def test_huge_add_is_rejected_fast():
    with pytest.raises(CalendarError, match="100 years"):
        cal().add(B(2026, 1, 1), 10**9)


def test_add_beyond_cap_raises():
    c = cal(working_hours={"mon": ["08:00-08:01"]})        # 1 minute a week
    with pytest.raises(CalendarError, match=f"more than {MAX_YEARS} years"):
        c.add(B(2026, 1, 1), 60 * 24 * 7)                  # would need ~193 years


def test_negative_and_non_int():
    c = cal()
    with pytest.raises(ValueError):
        c.add(B(2026, 1, 1), -1)
    with pytest.raises(TypeError):
        c.add(B(2026, 1, 1), 1.5)


def test_long_add_uses_year_skipping():
    c = cal()
    start = B(2026, 11, 23, 9, 0)
    end = c.add(start, 50 * 250 * 480)                     # ~50 working years
    assert c.between(start, end) == 50 * 250 * 480
    assert 2070 < end.year < 2080


# ------------------------------------------------------- properties vs reference
class Ref:
    """Naive minute-walk: one minute [t, t+60) is working iff t's local wall
    time is inside a configured interval of its (non-holiday) local date."""

    def __init__(self, data: dict):
        self.tz = ZoneInfo(data["timezone"])
        self.hours = {}
        for i, d in enumerate(ALLDAYS):
            ivs = []
            for text in data["working_hours"].get(d, []):
                a, b = text.split("-")
                ivs.append((int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])))
            self.hours[i] = ivs
        self.yearly = {tuple(map(int, h.split("-"))) for h in data.get("holidays", [])}
        self.once = {dt.date.fromisoformat(d) for d in data.get("one_time_holidays", [])}

    def working_minute(self, t: int) -> bool:
        local = dt.datetime.fromtimestamp(t, self.tz)
        day = local.date()
        if day in self.once or (day.month, day.day) in self.yearly:
            return False
        m = local.hour * 60 + local.minute
        return any(s <= m < e for s, e in self.hours[day.weekday()])

    def add(self, a: int, minutes: int) -> int:
        t = a
        while True:
            if self.working_minute(t):
                minutes -= 1
                if minutes == 0:
                    return t + 60
            t += 60

    def between(self, a: int, b: int) -> int:
        return sum(self.working_minute(t) for t in range(a, b, 60))


LUNCH_7 = {"timezone": "Europe/Berlin",
           "working_hours": {**{d: ["07:30-12:00", "12:45-18:00"] for d in WEEKDAYS},
                             "sat": ["02:00-03:15"], "sun": ["01:00-02:30", "22:00-24:00"]},
           "holidays": ["12-25", "01-01", "03-30"], "one_time_holidays": ["2026-10-26"]}
REF_CONFIGS = {
    "berlin": BERLIN,
    "berlin-odd": LUNCH_7,
    "newyork": {**NEWYORK, "working_hours": {**NEWYORK["working_hours"], "sun": ["00:30-03:30"]}},
    "lordhowe": {"timezone": "Australia/Lord_Howe",
                 "working_hours": {d: ["01:00-02:45", "09:00-17:00"] for d in ALLDAYS}},
}
CALS = {k: Calendar.from_config(k, v) for k, v in REF_CONFIGS.items()}
REFS = {k: Ref(v) for k, v in REF_CONFIGS.items()}
# minute-aligned instants around the 2026 DST switches and the year end
AROUND = [dt.datetime(2026, 3, 20, tzinfo=UTC), dt.datetime(2026, 10, 20, tzinfo=UTC),
          dt.datetime(2026, 12, 20, tzinfo=UTC), dt.datetime(2026, 3, 30, tzinfo=UTC),
          dt.datetime(2026, 9, 28, tzinfo=UTC)]
instants = st.builds(lambda base, m: int(base.timestamp()) + 60 * m,
                     st.sampled_from(AROUND), st.integers(0, 14 * 1440))
names = st.sampled_from(sorted(CALS))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _dt(u: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(u, UTC)


@FAST
@given(names, instants, st.integers(1, 1500))
def test_add_matches_reference(name, a, minutes):
    assert CALS[name].add(_dt(a), minutes) == _dt(REFS[name].add(a, minutes))


@FAST
@given(names, instants, st.integers(0, 6 * 1440))
def test_between_matches_reference(name, a, span):
    assert CALS[name].between(_dt(a), _dt(a + 60 * span)) == REFS[name].between(a, a + 60 * span)


@FAST
@given(names, instants)
def test_is_working_matches_reference(name, a):
    assert CALS[name].is_working(_dt(a)) == REFS[name].working_minute(a)


@FAST
@given(names, instants, st.integers(0, 20000))
def test_between_inverts_add(name, a, minutes):
    c = CALS[name]
    start = c.next_working(_dt(a))
    assert c.is_working(start)
    assert c.between(start, c.add(start, minutes)) == minutes


@FAST
@given(names, instants, st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 3 * 1440))
def test_monotonic(name, a, m1, m2, shift):
    c = CALS[name]
    lo, hi = sorted((m1, m2))
    start = _dt(a)
    assert c.add(start, lo) <= c.add(start, hi)
    assert c.add(start, lo) <= c.add(_dt(a + 60 * shift), lo)
    assert c.between(start, _dt(a + 60 * lo)) <= c.between(start, _dt(a + 60 * hi))
