"""Benchmark: gateway.sla.calendars add/between vs a naive minute-walk.

Run: .venv/bin/python bench/working_time.py [--seconds 0.5]

The naive reference steps one minute at a time and checks the local wall time of
each minute (the obvious implementation). Spans are in working minutes of a
Mon-Fri 08:00-12:00/13:00-17:00 Europe/Berlin calendar with holidays:
1 day (480), 1 week (2400), 1 month (~10,000).
"""
from __future__ import annotations

import os
import sys

# This file is named calendar.py: keep bench/ off sys.path so that the stdlib
# `calendar` module (imported by dependencies) is not shadowed by this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from gateway.sla.calendars import Calendar  # noqa: E402

UTC = dt.timezone.utc
CONFIG = {
    "timezone": "Europe/Berlin",
    "working_hours": {d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["12-25", "12-26", "01-01", "05-01", "10-03"],
    "one_time_holidays": ["2026-12-24"],
}


class Naive:
    def __init__(self, cfg: dict):
        self.tz = ZoneInfo(cfg["timezone"])
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        self.hours = {}
        for i, d in enumerate(days):
            ivs = []
            for text in cfg["working_hours"].get(d, []):
                a, b = text.split("-")
                ivs.append((int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])))
            self.hours[i] = ivs
        self.yearly = {tuple(map(int, h.split("-"))) for h in cfg["holidays"]}
        self.once = {dt.date.fromisoformat(d) for d in cfg["one_time_holidays"]}

    def working(self, t: int) -> bool:
        local = dt.datetime.fromtimestamp(t, self.tz)
        day = local.date()
        if day in self.once or (day.month, day.day) in self.yearly:
            return False
        m = local.hour * 60 + local.minute
        return any(s <= m < e for s, e in self.hours[day.weekday()])

    def add(self, start: dt.datetime, minutes: int) -> dt.datetime:
        t = int(start.timestamp())
        while True:
            if self.working(t):
                minutes -= 1
                if minutes == 0:
                    return dt.datetime.fromtimestamp(t + 60, UTC)
            t += 60

    def between(self, a: dt.datetime, b: dt.datetime) -> int:
        return sum(self.working(t) for t in range(int(a.timestamp()), int(b.timestamp()), 60))


def rate(fn, args: list, budget: float) -> float:
    """Calls per second of fn(*args[i]) cycling through args for ~budget seconds."""
    n = 0
    t0 = time.perf_counter()
    while True:
        for a in args:
            fn(*a)
            n += 1
        el = time.perf_counter() - t0
        if el >= budget:
            return n / el


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    opts = ap.parse_args()

    cal = Calendar.from_config("bench", CONFIG)
    naive = Naive(CONFIG)
    rnd = random.Random(42)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    starts = [base + dt.timedelta(minutes=rnd.randrange(365 * 1440)) for _ in range(200)]

    t0 = time.perf_counter()
    Calendar.from_config("cold", CONFIG).between(base, base.replace(year=2027))
    cold = time.perf_counter() - t0
    print(f"cold start: first between over 2026 builds that year's day table: {cold * 1e3:.1f} ms")
    print(f"{'op':8} {'span':>18} {'calendars ops/s':>16} {'naive ops/s':>12} {'speed-up':>9}")
    for label, minutes in (("1 day", 480), ("1 week", 2400), ("1 month", 10_000)):
        add_args = [(s, minutes) for s in starts]
        # warm the caches and cross-check both implementations on a few starts
        for s in starts[:5]:
            assert cal.add(s, minutes) == naive.add(s, minutes), (s, minutes)
        fast = rate(cal.add, add_args, opts.seconds)
        slow = rate(naive.add, add_args[:20], opts.seconds)
        print(f"{'add':8} {label + f' ({minutes} min)':>18} {fast:16,.0f} {slow:12,.1f} "
              f"{fast / slow:8,.0f}x")

        btw_args = [(s, cal.add(s, minutes)) for s in starts]
        for a, b in btw_args[:5]:
            assert cal.between(a, b) == naive.between(a, b) == minutes
        fast = rate(cal.between, btw_args, opts.seconds)
        slow = rate(naive.between, btw_args[:20], opts.seconds)
        print(f"{'between':8} {label + f' ({minutes} min)':>18} {fast:16,.0f} {slow:12,.1f} "
              f"{fast / slow:8,.0f}x")


if __name__ == "__main__":
    main()
