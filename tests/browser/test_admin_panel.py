"""The admin panel in a real browser: questions before destructive actions, and the audit log at desktop width."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import (
    ADMIN_EMAIL,
    DESKTOP,
    assert_no_horizontal_scroll,
    register_patient,
    save_screenshot,
    sign_in,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# A page address pasted into the object id filter: 75 characters without a space, which the CSV export
# records in the detail of its audit event.
LONG_FILTER = f'http://127.0.0.1:8080/doctor/cases/{"0123456789abcdef" * 2}/viewer'


def _table_overflow(page: sync_api.Page, marker_text: str) -> dict[str, int]:
    """Return the scroll and visible widths of the scroll box of the table that contains `marker_text`."""
    box = page.locator('.q-table__middle', has_text=marker_text).first
    return box.evaluate('element => ({scrollWidth: element.scrollWidth, clientWidth: element.clientWidth})')


def test_audit_detail_fits_desktop(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP)
    sign_in(page, ADMIN_EMAIL)
    page.get_by_role('tab', name='Audit log').click()
    page.get_by_label('Object id').fill(LONG_FILTER)
    with page.expect_download():
        page.get_by_role('button', name='Export CSV').click()
    # The newest events come first, so the export's own event is on the first page.
    page.reload()
    page.get_by_role('tab', name='Audit log').click()
    expect(page.locator('td', has_text=LONG_FILTER).first).to_be_visible()

    widths = _table_overflow(page, LONG_FILTER)
    assert widths['scrollWidth'] <= widths['clientWidth'], f'the audit table scrolls sideways: {widths}'
    assert_no_horizontal_scroll(page)
    detail = page.locator('.audit-detail', has_text=LONG_FILTER).first
    # The whole detail stays readable: in the tooltip of the cell and, after a click, in the cell itself.
    assert LONG_FILTER in (detail.get_attribute('title') or '')
    detail.click()
    expect(detail).to_have_class(re.compile(r'\baudit-detail-open\b'))
    save_screenshot(page, 'desktop-admin-audit-log')


def test_deactivate_patient_asks_first(open_page: Callable[..., sync_api.Page]) -> None:
    email = unique_email('petra')
    patient = open_page(**DESKTOP)
    patient.goto('/register')
    register_patient(patient, name='Petra Pause', email=email)

    admin = open_page(**DESKTOP)
    sign_in(admin, ADMIN_EMAIL)
    admin.get_by_role('tab', name='Patients').click()
    admin.get_by_label('Search by name or email').fill(email)
    row = admin.locator('.q-card', has_text=email)
    expect(row.get_by_text('active', exact=True)).to_be_visible()

    row.get_by_role('button', name='Deactivate').click()
    dialog = admin.get_by_role('dialog')
    expect(dialog.get_by_text('Deactivate the account of Petra Pause?')).to_be_visible()
    expect(dialog.get_by_text(f'Petra Pause ({email}) is signed out at once', exact=False)).to_be_visible()
    save_screenshot(admin, 'desktop-admin-deactivate-question')
    dialog.get_by_role('button', name='Cancel').click()
    expect(dialog).to_be_hidden()
    expect(row.get_by_text('active', exact=True)).to_be_visible()
    patient.reload()
    expect(patient.get_by_role('main').get_by_text('My examinations')).to_be_visible()

    row.get_by_role('button', name='Deactivate').click()
    dialog.get_by_role('button', name='Deactivate').click()
    expect(row.get_by_text('deactivated', exact=True)).to_be_visible()
    # The patient's open page leaves for the sign-in page, which shows the reason.
    patient.wait_for_url('**/login?ended=deactivated')

    row.get_by_role('button', name='Reactivate').click()
    expect(row.get_by_text('active', exact=True)).to_be_visible()
    expect(dialog).to_be_hidden()


def test_unknown_path_page_works(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP)
    page.goto('/register')
    register_patient(page, name='Nora Nowhere', email=unique_email('nora'))
    response = page.goto('/no/such/page')
    assert response is not None
    assert response.status == 404
    expect(page.get_by_text('Page not found.')).to_be_visible()
    # The page is the app's own: its navigation works over the websocket like on any other page.
    page.get_by_role('button', name='Profile').first.click()
    page.wait_for_url('**/profile')
