"""Dates and times on pages, shown in the time zone of the browser that opened the page.

Timestamps are stored in UTC. Every page loads `TIME_ZONE_SCRIPT`, which stores the browser's IANA
time zone in the cookie `tz`, so the following requests carry it. A page that formatted a time in
another zone than the browser's reloads itself once (`zone_reload_script`). A missing, unknown or malformed
zone name falls back to UTC, and every formatted time names its zone, so a fallback is visible.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time
from functools import cache

from .. import i18n

TIME_ZONE_COOKIE = 'tz'
UTC_ZONE = zoneinfo.ZoneInfo('UTC')
# Longer cookie values are rejected without a lookup. The longest IANA zone name has 32 characters
# (America/Argentina/ComodRivadavia in tzdata 2026.6).
MAX_ZONE_NAME_LENGTH = 64

# Script for the head of every page. The cookie lasts a year and is refreshed on every page load, so
# a laptop taken to another zone shows the new zone from its next page on.
TIME_ZONE_SCRIPT = rf"""<script>
(() => {{
  try {{
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // IANA names use only these characters, all allowed in a cookie value; Starlette does not decode %XX.
    if (zone && /^[A-Za-z0-9_+\-\/]+$/.test(zone)) {{
      document.cookie = '{TIME_ZONE_COOKIE}=' + zone + '; path=/; max-age=31536000; samesite=lax';
    }}
  }} catch (error) {{}}
}})();
</script>"""


def zone_reload_script(rendered_zone: str) -> str:
    """Return a script that reloads the page once when it was rendered in another zone than the browser's.

    That happens on the first page a browser opens, before `TIME_ZONE_SCRIPT` has set the cookie, and after
    the device moved to another zone. The script reloads only when the cookie now contains the browser's zone,
    and at most once per zone and tab (sessionStorage), so a server that does not know the zone cannot
    cause a reload loop.
    """
    if not re.fullmatch(r'[A-Za-z0-9_+\-/]+', rendered_zone):
        raise ValueError(f'invalid zone name {rendered_zone!r}')
    return f"""<script>
(() => {{
  try {{
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const marker = 'tz-reloaded-' + zone;
    const cookieHasZone = document.cookie.split('; ').includes('{TIME_ZONE_COOKIE}=' + zone);
    if (zone && zone !== '{rendered_zone}' && cookieHasZone && !sessionStorage.getItem(marker)) {{
      sessionStorage.setItem(marker, '1');
      window.location.reload();
    }}
  }} catch (error) {{}}
}})();
</script>"""


@cache
def _known_zone_names() -> frozenset[str]:
    # available_timezones() walks the zone files on every call, so the set is read once per process.
    return frozenset(zoneinfo.available_timezones())


def parse_zone(name: str | None) -> zoneinfo.ZoneInfo:
    """Return the IANA time zone `name`, or UTC when it is missing, unknown or malformed.

    Only names in the installed zone database are accepted, so a cookie cannot point ZoneInfo at a file path.
    """
    if not name or len(name) > MAX_ZONE_NAME_LENGTH or name not in _known_zone_names():
        return UTC_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def format_time(value: datetime | None, zone: zoneinfo.ZoneInfo, *, with_zone: bool = True) -> str:
    """Format a moment in `zone` and the page's language, e.g. "5 Dec 2026, 14:05 (Europe/Zurich)" or
    "5 Aralık 2026 14:05 (Europe/Istanbul)"; None gives "-"."""
    return i18n.format_datetime(value, zone, with_zone=with_zone)


def start_of_day(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """Return the first moment of the calendar day `day` in `zone`, as an aware UTC datetime.

    Where a daylight-saving change skips midnight (as in America/Santiago in September), local
    midnight does not exist. Its default fold takes the offset from before the change, which
    gives the first moment that does exist, e.g. 01:00 local time.
    """
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
