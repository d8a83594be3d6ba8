#!/usr/bin/env python3
"""Generate test/calendar/vectors.json from SPEC.md section 2, independently of src/calendar.

This is a second implementation of the calendar rules, written from the SPEC
text with the Python standard library only (datetime, zoneinfo, calendar), so
that the TypeScript implementation is checked against values it did not
produce. Do not "fix" a vector by copying the TypeScript output: when the two
disagree, decide from SPEC section 2 which one is right.

Usage:
    python3 tools/gen-calendar-vectors.py            # rewrite test/calendar/vectors.json
    python3 tools/gen-calendar-vectors.py --check    # exit 1 if the file is stale

The rules, as read from SPEC section 2:
  * anchor = startDate at sendOnHour:00 (local wall time in `timezone`),
    shifted by `trial` on the wall clock (P21D = 21 calendar days, same hour).
  * local due date of cycle n = anchor date + (n-1) x interval, always from
    the anchor (never chained). day/week: plain calendar days. month/year:
    calendar months; a day missing from the target month is clamped to its
    last day (`clamp`) or the surplus days spill into the next month
    (`overflow`: Jan 30 + 1 month = Feb 28 + 2 days = Mar 2).
  * local wall time -> instant: a wall time in a gap (does not exist) moves
    forward by the gap, i.e. is read with the offset in force before the
    transition; an ambiguous wall time (overlap) takes the earlier offset,
    i.e. its first occurrence (PEP 495 fold=0).
  * endDate is inclusive on the local date of the due instant in `timezone`;
    maxCycles caps n. A preview stops at the first cycle that does not exist.
"""
from __future__ import annotations

import calendar
import json
import re
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

UTC = timezone.utc
OUT = Path(__file__).resolve().parent.parent / "test" / "calendar" / "vectors.json"

ALIASES = {
    "DAY": ("day", 1),
    "WEEK": ("week", 1),
    "TWO_WEEKS": ("week", 2),
    "MONTH": ("month", 1),
    "TWO_MONTHS": ("month", 2),
    "THREE_MONTHS": ("month", 3),
    "SIX_MONTHS": ("month", 6),
    "YEAR": ("year", 1),
}
PHRASE = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$", re.IGNORECASE)


def parse_interval(every) -> tuple[str, int]:
    if isinstance(every, str):
        key = every.strip().upper()
        if key in ALIASES:
            return ALIASES[key]
        m = PHRASE.match(every)
        if not m:
            raise ValueError(f"bad interval {every!r}")
        unit, count = m.group(2).lower(), int(m.group(1))
    else:
        unit, count = every["unit"].lower(), every["count"]
    if unit not in ("day", "week", "month", "year") or not isinstance(count, int) or count < 1:
        raise ValueError(f"bad interval {every!r}")
    return unit, count


DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def add_months(d: date, months: int, policy: str) -> date:
    """Calendar months from d; a missing day is clamped or spills over (SPEC 2, monthEnd)."""
    index = d.year * 12 + (d.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    last = calendar.monthrange(year, month)[1]
    if d.day <= last:
        return date(year, month, d.day)
    if policy == "clamp":
        return date(year, month, last)
    if policy == "overflow":
        return date(year, month, last) + timedelta(days=d.day - last)
    raise ValueError(f"bad monthEnd {policy!r}")


def add_trial(wall: datetime, trial: str) -> datetime:
    """anchor + trial on the wall clock (calendar days keep the local hour across DST)."""
    m = DURATION.match(trial)
    if not m or trial in ("P", "PT"):
        raise ValueError(f"bad trial {trial!r}")
    y, mo, w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    shifted_date = add_months(wall.date(), 12 * y + mo, "clamp") if (y or mo) else wall.date()
    out = datetime.combine(shifted_date, wall.time())
    return out + timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Local wall time -> UTC instant, with the SPEC's gap and overlap rules."""
    a = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    exists = [u for u in (a, b) if u.astimezone(zone).replace(tzinfo=None) == wall]
    if exists:
        # One instant (normal) or two (overlap): the first occurrence is the earlier instant.
        return min(exists)
    # Gap: the two readings use the offsets before and after the jump. Reading the wall
    # time with the smaller (pre-jump) offset gives the later instant, which shows on the
    # clock as wall + gap: "moves forward by the gap".
    before_offset = min(wall.replace(tzinfo=zone, fold=f).utcoffset() for f in (0, 1))
    after_offset = max(wall.replace(tzinfo=zone, fold=f).utcoffset() for f in (0, 1))
    instant = (wall - before_offset).replace(tzinfo=UTC)
    assert instant.astimezone(zone).replace(tzinfo=None) == wall + (after_offset - before_offset)
    return instant


class Schedule:
    def __init__(self, spec: dict):
        self.zone = ZoneInfo(spec["timezone"])
        self.unit, self.count = parse_interval(spec["every"])
        self.policy = spec["monthEnd"]
        hour = spec["sendOnHour"]
        assert isinstance(hour, int) and 0 <= hour <= 23
        anchor = datetime.combine(date.fromisoformat(spec["startDate"]), datetime.min.time()).replace(hour=hour)
        if spec.get("trial"):
            anchor = add_trial(anchor, spec["trial"])
        self.anchor = anchor
        self.end_date = date.fromisoformat(spec["endDate"]) if spec.get("endDate") else None
        self.max_cycles = spec.get("maxCycles")

    def local_due(self, n: int) -> datetime:
        k = (n - 1) * self.count
        d = self.anchor.date()
        if self.unit == "day":
            d = d + timedelta(days=k)
        elif self.unit == "week":
            d = d + timedelta(days=7 * k)
        elif self.unit == "month":
            d = add_months(d, k, self.policy)
        else:
            d = add_months(d, 12 * k, self.policy)
        return datetime.combine(d, self.anchor.time())

    def due_at(self, n: int) -> datetime:
        assert n >= 1
        return local_to_utc(self.local_due(n), self.zone)

    def exists(self, n: int) -> bool:
        if self.max_cycles is not None and n > self.max_cycles:
            return False
        if self.end_date is not None and self.due_at(n).astimezone(self.zone).date() > self.end_date:
            return False
        return True

    def preview(self, count: int, from_instant: datetime | None) -> list[datetime]:
        n = 1
        if from_instant is not None:
            while self.due_at(n) < from_instant:
                n += 1
        out = []
        while len(out) < count and self.exists(n):
            out.append(self.due_at(n))
            n += 1
        return out


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --------------------------------------------------------------------------- cases

CASES: list[dict] = []


def sched(start, every, hour=0, tz="UTC", month_end="clamp", **extra):
    s = {"startDate": start, "every": every, "sendOnHour": hour, "timezone": tz, "monthEnd": month_end}
    s.update(extra)
    return s


def case(name, schedule, *, cycles=None, count=None, from_=None, note=None):
    assert (cycles is None) != (count is None), name
    c = {"name": name}
    if note:
        c["note"] = note
    c["schedule"] = schedule
    if cycles is not None:
        c["cycles"] = cycles
    else:
        c["count"] = count
        if from_ is not None:
            c["from"] = from_
    CASES.append(c)


# Month ends: Jan 29/30/31 monthly, leap (2024) and common (2023, 2025) years, both policies.
for day in (29, 30, 31):
    for year in (2024, 2023, 2025):
        kind = "leap" if calendar.isleap(year) else "common"
        for policy in ("clamp", "overflow"):
            case(
                f"Jan {day} {year} ({kind}) monthly, {policy}",
                sched(f"{year}-01-{day:02d}", "MONTH", month_end=policy),
                count=6,
            )

case("Jan 31 monthly clamps to Feb 28 then returns to Mar 31 (no drift)", sched("2025-01-31", "MONTH"), count=13)
case("Jan 31 monthly overflow: Mar 3, Mar 31, May 1, May 31", sched("2025-01-31", "MONTH", month_end="overflow"), count=13)
case("Mar 31 monthly clamp: Apr 30, May 31, Jun 30", sched("2025-03-31", "MONTH"), count=13)
case("Mar 31 monthly overflow: May 1, May 31, Jul 1", sched("2025-03-31", "MONTH", month_end="overflow"), count=13)
case("Aug 31 monthly clamp through Feb 29 2024", sched("2023-08-31", "MONTH"), count=13)
case("Aug 31 monthly overflow through Mar 2 2024", sched("2023-08-31", "MONTH", month_end="overflow"), count=13)
case("May 31 monthly overflow: Jul 1, Jul 31, Aug 31, Oct 1", sched("2023-05-31", "MONTH", month_end="overflow"), count=8)
case("May 31 monthly clamp: Jun 30, Jul 31", sched("2023-05-31", "MONTH"), count=8)
case("Feb 29 yearly clamp: Feb 28 in common years, Feb 29 again in leap years", sched("2024-02-29", "YEAR"), count=9)
case("Feb 29 yearly overflow: Mar 1 in common years, Feb 29 in leap years", sched("2024-02-29", "YEAR", month_end="overflow"), count=9)
case("Feb 28 yearly stays on Feb 28 in leap years", sched("2023-02-28", "YEAR"), count=3)

for every, label in (("THREE_MONTHS", "quarterly"), ("SIX_MONTHS", "six-monthly")):
    for start in ("2023-11-30", "2023-08-31", "2023-10-31"):
        for policy in ("clamp", "overflow"):
            case(f"{label} ({every}) from {start}, {policy}", sched(start, every, month_end=policy), count=6)

case("TWO_MONTHS from Dec 31 clamp: Feb 29 2024, Apr 30, Jun 30", sched("2023-12-31", "TWO_MONTHS"), count=7)
case("TWO_MONTHS from Dec 31 overflow: Mar 2 2024, Apr 31 -> May 1", sched("2023-12-31", "TWO_MONTHS", month_end="overflow"), count=7)
case("TWO_MONTHS from Dec 31 2024 overflow: Mar 3 2025", sched("2024-12-31", "TWO_MONTHS", month_end="overflow"), count=4)

# Weeks and days.
case("weekly across a year end", sched("2024-12-18", "WEEK"), count=5)
case("TWO_WEEKS across a year end", sched("2023-12-20", "TWO_WEEKS"), count=5)
case("weekly at 09:00 New York across a year end", sched("2025-12-17", "WEEK", hour=9, tz="America/New_York"), count=4)
case("daily across a year end and Feb 29", sched("2023-12-30", "DAY"), cycles=[1, 2, 3, 61, 62, 63])
case("daily at 09:00 New York across spring forward keeps 09:00 local", sched("2025-03-07", "DAY", hour=9, tz="America/New_York"), count=5)
case("daily at 12:00 Berlin across the autumn change keeps 12:00 local", sched("2025-10-24", "DAY", hour=12, tz="Europe/Berlin"), count=5)
case("weekly at 09:00 Berlin across spring forward", sched("2025-03-16", "WEEK", hour=9, tz="Europe/Berlin"), count=4)

# Interval spellings.
case('"3 months" string from Nov 30', sched("2023-11-30", "3 months"), count=4)
case('"1 week" string', sched("2025-02-24", "1 week"), count=3)
case('"2 years" string from Feb 29', sched("2024-02-29", "2 years"), count=3)
case("lower-case alias three_months", sched("2023-11-30", "three_months"), count=3)
case("object interval {unit: day, count: 10}", sched("2025-02-15", {"unit": "day", "count": 10}), count=4)
case("object interval {unit: month, count: 18}", sched("2024-08-31", {"unit": "month", "count": 18}), count=3)

# DST gaps and overlaps at sendOnHour 2 (and 1 for New York's overlap).
case("New York daily 02:00 across spring forward: the missing 02:00 becomes 03:00 EDT",
     sched("2025-03-07", "DAY", hour=2, tz="America/New_York"), count=5)
case("New York monthly 02:00 lands in the spring-forward gap on Mar 9",
     sched("2025-01-09", "MONTH", hour=2, tz="America/New_York"), count=5)
case("New York daily 01:00 across fall back takes the first (EDT) 01:00",
     sched("2025-10-31", "DAY", hour=1, tz="America/New_York"), count=5)
case("New York monthly 01:00 hits the ambiguous hour on Nov 3 2024",
     sched("2024-08-03", "MONTH", hour=1, tz="America/New_York"), count=5)
case("New York daily 02:00 across fall back (02:00 is not ambiguous)",
     sched("2025-11-01", "DAY", hour=2, tz="America/New_York"), count=3)
case("Berlin daily 02:00 across spring forward: the missing 02:00 becomes 03:00 CEST",
     sched("2025-03-28", "DAY", hour=2, tz="Europe/Berlin"), count=5)
case("Berlin monthly 02:00 from Jan 30 lands in the gap on Mar 30",
     sched("2025-01-30", "MONTH", hour=2, tz="Europe/Berlin"), count=5)
case("Berlin daily 02:00 across fall back takes the first (CEST) 02:00",
     sched("2025-10-24", "DAY", hour=2, tz="Europe/Berlin"), count=5)
case("Berlin monthly 02:00 hits the ambiguous hour on Oct 26",
     sched("2025-07-26", "MONTH", hour=2, tz="Europe/Berlin"), count=5)
case("Berlin yearly 02:00 from Mar 31 2024: in the gap in 2024 and 2030 (last Sundays of March), 01:00Z then 00:00Z",
     sched("2024-03-31", "YEAR", hour=2, tz="Europe/Berlin"), count=7)

# Fractional offsets.
case("Kolkata (+05:30) monthly Jan 31 at 03:00 falls on the previous UTC day",
     sched("2025-01-31", "MONTH", hour=3, tz="Asia/Kolkata"), count=4)
case("Kolkata (+05:30) daily at 10:00", sched("2025-02-27", "DAY", hour=10, tz="Asia/Kolkata"), count=3)
case("Kathmandu (+05:45) monthly Jan 31 at midnight", sched("2025-01-31", "MONTH", tz="Asia/Kathmandu"), count=4)
case("Kathmandu (+05:45) weekly at 23:00", sched("2025-12-24", "WEEK", hour=23, tz="Asia/Kathmandu"), count=3)
case("Lord Howe daily 02:00 across its 30-minute spring forward: 02:00 becomes 02:30",
     sched("2024-10-04", "DAY", hour=2, tz="Australia/Lord_Howe"), count=4)
case("Lord Howe monthly 02:00 lands in the 30-minute gap on Oct 6 2024",
     sched("2024-08-06", "MONTH", hour=2, tz="Australia/Lord_Howe"), count=4)
case("Lord Howe daily 02:00 across its 30-minute fall back",
     sched("2024-04-05", "DAY", hour=2, tz="Australia/Lord_Howe"), count=4)
case("Auckland monthly 02:00 in the gap on the last Sunday of September",
     sched("2024-07-29", "MONTH", hour=2, tz="Pacific/Auckland"), count=4)
case("St John's (-03:30) daily at 00:00 across spring forward",
     sched("2025-03-08", "DAY", tz="America/St_Johns"), count=3)

# Far cycles: computed from the anchor, so no drift after 1000 cycles.
case("cycle 1000 of a Jan 31 monthly is still a month end", sched("2025-01-31", "MONTH"), cycles=[1000, 999, 998, 997])
case("cycle 1000 of a Jan 31 monthly at 09:00 New York", sched("2025-01-31", "MONTH", hour=9, tz="America/New_York"), cycles=[1000, 1001, 1002])
case("cycle 1000 of a Jan 31 monthly overflow", sched("2025-01-31", "MONTH", month_end="overflow"), cycles=[1000, 1001, 1002])
case("cycle 1000 of a daily", sched("2025-01-01", "DAY"), cycles=[1000, 1001])
case("cycle 1000 of a daily at 02:00 Berlin", sched("2025-01-01", "DAY", hour=2, tz="Europe/Berlin"), cycles=[1000])
case("cycle 1000 of a Feb 29 yearly", sched("2024-02-29", "YEAR"), cycles=[1000, 997])
case("cycle 10000 of a weekly", sched("2025-01-06", "WEEK"), cycles=[10000])

# Trials.
case("trial P21D from Jan 10 anchors every cycle on the 31st", sched("2025-01-10", "MONTH", trial="P21D"), count=4)
case("trial P21D from Jan 10 2024 (leap): Feb 29", sched("2024-01-10", "MONTH", trial="P21D"), count=4)
case("trial P3W from Jan 10 overflow", sched("2023-01-10", "MONTH", month_end="overflow", trial="P3W"), count=4)
case("trial P14D across spring forward keeps 09:00 local",
     sched("2025-03-01", "MONTH", hour=9, tz="America/New_York", trial="P14D"), count=3)
case("trial P7D ends in the New York gap: cycle 1 at 03:00 EDT, later cycles at 02:00",
     sched("2025-03-02", "MONTH", hour=2, tz="America/New_York", trial="P7D"), count=3)
case("trial P10D across the Berlin autumn change, weekly",
     sched("2025-10-20", "WEEK", hour=8, tz="Europe/Berlin", trial="P10D"), count=3)

# Ends.
case("endDate inclusive: a cycle due on endDate is included, the next is not",
     sched("2025-01-31", "MONTH", endDate="2025-04-30"), count=12)
case("endDate the day before a due date excludes it",
     sched("2025-01-31", "MONTH", endDate="2025-04-29"), count=12)
case("endDate is a local date: 23:00 New York on Apr 30 is May 1 in UTC and still included",
     sched("2025-01-30", "MONTH", hour=23, tz="America/New_York", endDate="2025-04-30"), count=12)
case("endDate is a local date: Kathmandu midnight Apr 30 is Apr 29 in UTC and excluded by endDate Apr 29",
     sched("2025-01-30", "MONTH", tz="Asia/Kathmandu", endDate="2025-04-29"), count=12)
case("endDate with cycles: cycles after the end are null",
     sched("2025-01-31", "MONTH", endDate="2025-03-31"), cycles=[1, 3, 4, 12])
case("maxCycles 3 with a larger count", sched("2025-01-31", "MONTH", maxCycles=3), count=12)
case("maxCycles 1", sched("2025-06-15", "WEEK", maxCycles=1), count=5)
case("maxCycles and endDate: the earlier end wins (endDate)",
     sched("2025-01-01", "WEEK", endDate="2025-01-22", maxCycles=10), count=12)
case("maxCycles and endDate: the earlier end wins (maxCycles)",
     sched("2025-01-01", "WEEK", endDate="2025-12-31", maxCycles=2), count=12)
case("maxCycles with cycles: cycle 4 of 3 is null", sched("2025-01-31", "MONTH", maxCycles=3), cycles=[3, 4])
case("trial and endDate: the trial shifts cycle 1 past an early endDate",
     sched("2025-01-10", "MONTH", trial="P21D", endDate="2025-01-30"), count=3)

# Previews from an instant.
case("from an instant between due dates starts at the next cycle",
     sched("2025-01-31", "MONTH"), count=3, from_="2025-03-15T12:00:00Z")
case("from exactly a due instant includes that cycle",
     sched("2025-01-31", "MONTH"), count=2, from_="2025-02-28T00:00:00Z")
case("from one second after a due instant skips it",
     sched("2025-01-31", "MONTH"), count=2, from_="2025-02-28T00:00:01Z")
case("from before the anchor starts at cycle 1",
     sched("2025-01-31", "MONTH", hour=9, tz="Europe/Berlin"), count=2, from_="2020-01-01T00:00:00Z")
case("from far ahead of a daily schedule",
     sched("2025-01-01", "DAY", hour=2, tz="America/New_York"), count=3, from_="2027-03-14T06:30:00Z")
case("from past the endDate gives nothing",
     sched("2025-01-31", "MONTH", endDate="2025-04-30"), count=3, from_="2025-05-01T00:00:00Z")


def build() -> dict:
    out_cases = []
    names = set()
    for c in CASES:
        assert c["name"] not in names, f"duplicate case name {c['name']}"
        names.add(c["name"])
        s = Schedule(c["schedule"])
        if "cycles" in c:
            expected = [iso(s.due_at(n)) if s.exists(n) else None for n in c["cycles"]]
        else:
            from_instant = parse_instant(c["from"]) if "from" in c else None
            expected = [iso(t) for t in s.preview(c["count"], from_instant)]
        out_cases.append({**c, "expected": expected})
    return {
        "$comment": [
            "Calendar test vectors for SPEC.md section 2. DATA: read by test/calendar/vectors.test.ts and by any other tool.",
            "Generated by tools/gen-calendar-vectors.py, an independent Python (stdlib zoneinfo) implementation; do not edit by hand.",
            "schedule: startDate yyyy-MM-dd; every = alias (case-insensitive), '3 months'-style phrase or {unit, count};",
            "  sendOnHour 0..23 and timezone (IANA) give the local anchor time; monthEnd clamp|overflow;",
            "  optional trial (ISO-8601 duration), endDate (inclusive local date), maxCycles.",
            "A case has either 'cycles' or 'count' (optionally with 'from'):",
            "  cycles: [n, ...] -> expected[i] is dueAt(cycles[i]), or null when that cycle does not exist (endDate/maxCycles).",
            "  count: N -> expected is previewDueDates(schedule, N[, from]): up to N instants from cycle 1 (or from the",
            "    first cycle due at or after the instant 'from'), stopping early where endDate/maxCycles ends the schedule.",
            "expected instants are UTC ISO-8601 with Z, seconds precision. 'note' is optional free text.",
        ],
        "tzdata": tzdata_version(),
        "cases": out_cases,
    }


def tzdata_version() -> str:
    for p in ("/usr/share/zoneinfo/tzdata.zi",):
        try:
            first = Path(p).read_text().splitlines()[0]
            return first.replace("# version", "").strip()
        except OSError:
            pass
    return "unknown"


def self_check() -> None:
    """The worked examples in SPEC section 2, checked literally before anything is written."""
    def local_dates(start, every, policy, count):
        s = Schedule(sched(start, every, month_end=policy))
        return [s.local_due(n).date().isoformat() for n in range(1, count + 1)]

    assert local_dates("2025-01-31", "MONTH", "clamp", 3) == ["2025-01-31", "2025-02-28", "2025-03-31"]
    assert local_dates("2025-01-30", "MONTH", "clamp", 4) == ["2025-01-30", "2025-02-28", "2025-03-30", "2025-04-30"]
    assert local_dates("2024-01-30", "MONTH", "clamp", 2)[1] == "2024-02-29"
    assert local_dates("2024-02-29", "YEAR", "clamp", 5)[1:] == ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]
    assert local_dates("2025-01-30", "MONTH", "overflow", 4) == ["2025-01-30", "2025-03-02", "2025-03-30", "2025-04-30"]
    assert local_dates("2024-01-30", "MONTH", "overflow", 2)[1] == "2024-03-01"
    assert local_dates("2025-01-31", "MONTH", "overflow", 5) == ["2025-01-31", "2025-03-03", "2025-03-31", "2025-05-01", "2025-05-31"]
    assert local_dates("2024-01-31", "MONTH", "overflow", 2)[1] == "2024-03-02"
    ny = ZoneInfo("America/New_York")
    # Gap: 02:30 on spring-forward night is 03:30 EDT; overlap: 01:30 on fall-back night is the EDT one.
    assert iso(local_to_utc(datetime(2025, 3, 9, 2, 30), ny)) == "2025-03-09T07:30:00Z"
    assert iso(local_to_utc(datetime(2025, 11, 2, 1, 30), ny)) == "2025-11-02T05:30:00Z"
    trial = Schedule(sched("2023-01-10", "MONTH", trial="P21D"))
    assert [iso(trial.due_at(n)) for n in (1, 2)] == ["2023-01-31T00:00:00Z", "2023-02-28T00:00:00Z"]


def main(argv: list[str]) -> int:
    self_check()
    text = json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 tools/gen-calendar-vectors.py", file=sys.stderr)
            return 1
        print(f"{OUT} is up to date ({len(CASES)} cases)")
        return 0
    OUT.write_text(text)
    print(f"wrote {len(CASES)} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
