"""Dates and times in the browser's time zone: zone names from the cookie, formats, and local day bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from secondopinion.pages.formatting import UTC_ZONE, format_time, parse_zone, start_of_day, zone_reload_script

SUMMER_NOON = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
WINTER_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize('name', ['Europe/Zurich', 'America/Argentina/Buenos_Aires', 'Asia/Kolkata', 'UTC'])
def test_parse_zone_known_names(name: str):
    assert parse_zone(name).key == name


@pytest.mark.parametrize('name', [None, '', 'Mars/Olympus_Mons', 'europe/zurich', '../../etc/passwd',
                                  '/usr/share/zoneinfo/Europe/Zurich', 'Europe/Zurich\x00', 'A' * 200])
def test_parse_zone_falls_back_to_utc(name: str | None):
    assert parse_zone(name) is UTC_ZONE


def test_format_time_summer_and_winter():
    zurich = parse_zone('Europe/Zurich')
    assert format_time(SUMMER_NOON, zurich) == '1 Jul 2026, 14:00 (Europe/Zurich)'
    assert format_time(WINTER_NOON, zurich) == '5 Dec 2026, 13:00 (Europe/Zurich)'


def test_format_time_half_hour_zone_changes_day():
    kolkata = parse_zone('Asia/Kolkata')
    late = datetime(2026, 12, 31, 19, 45, tzinfo=UTC)
    assert format_time(late, kolkata) == '1 Jan 2027, 01:15 (Asia/Kolkata)'


def test_format_time_without_zone_name():
    assert format_time(WINTER_NOON, parse_zone('America/New_York'), with_zone=False) == '5 Dec 2026, 07:00'


def test_format_time_utc_fallback_named():
    assert format_time(WINTER_NOON, parse_zone(None)) == '5 Dec 2026, 12:00 (UTC)'


def test_format_time_other_offset_and_naive():
    zurich = parse_zone('Europe/Zurich')
    tokyo_evening = datetime(2026, 12, 5, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    assert format_time(tokyo_evening, zurich) == '5 Dec 2026, 13:00 (Europe/Zurich)'
    # A naive value is taken as UTC, as the database stores it.
    assert format_time(datetime(2026, 12, 5, 12, 0), zurich) == '5 Dec 2026, 13:00 (Europe/Zurich)'


def test_format_time_missing_value():
    assert format_time(None, UTC_ZONE) == '-'


def test_start_of_day_in_zone():
    assert start_of_day(date(2026, 7, 1), parse_zone('Europe/Zurich')) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert start_of_day(date(2026, 7, 1), UTC_ZONE) == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


def test_start_of_day_when_midnight_skipped():
    # Chile moves its clocks from 00:00 to 01:00 on 6 September 2026, so that day starts at 01:00 (-03:00).
    santiago = parse_zone('America/Santiago')
    start = start_of_day(date(2026, 9, 6), santiago)
    assert start == datetime(2026, 9, 6, 4, 0, tzinfo=UTC)
    assert start.astimezone(santiago).hour == 1
    assert start - start_of_day(date(2026, 9, 5), santiago) == timedelta(hours=24)


def test_zone_reload_script_once_per_zone():
    script = zone_reload_script('Europe/Zurich')
    assert "zone !== 'Europe/Zurich'" in script
    assert 'sessionStorage.getItem(marker)' in script


@pytest.mark.parametrize('name', ["UTC'; alert(1); '", 'Europe/Zurich</script>', ''])
def test_zone_reload_script_rejects_names(name: str):
    with pytest.raises(ValueError, match='invalid zone name'):
        zone_reload_script(name)
