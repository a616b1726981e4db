"""The first page that a browser opens shows times in the browser's time zone, before any `tz` cookie exists."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import PHONE, register_patient, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

ZONE = 'Asia/Tokyo'


def test_first_page_local_time(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE, timezone_id=ZONE)
    page.goto('/register')
    register_patient(page, name='Tomo Tokyo', email=unique_email('zone'))
    page.goto('/exams/new')
    page.wait_for_url('**/edit')

    # As a browser that kept the session but not the zone cookie, e.g. after its cookies for the
    # site were partly cleared: the list is the first page it renders.
    page.context.clear_cookies(name='tz')
    page.goto('/exams')
    created = page.get_by_text('Created ', exact=False).first
    expect(created).to_contain_text(f'({ZONE})')
    assert {'tz': ZONE}.items() <= {cookie['name']: cookie['value'] for cookie in page.context.cookies()}.items()

