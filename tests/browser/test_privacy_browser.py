"""The "Your data" section in a real browser: the data download, and the account deletion that signs out."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

import pytest

from tests.conftest import PASSWORD

from .conftest import DESKTOP, register_patient, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def test_download_and_delete_account(open_page: Callable[..., sync_api.Page]) -> None:
    email = unique_email('zelda')
    page = open_page(**DESKTOP)
    page.goto('/register')
    register_patient(page, name='Zelda Privatova', email=email)
    page.goto('/profile')

    with page.expect_download() as download_info:
        page.get_by_role('button', name='Download all my data').click()
    archive = zipfile.ZipFile(io.BytesIO(download_info.value.path().read_bytes()))
    assert json.loads(archive.read('account.json'))['profile']['email'] == email

    page.get_by_role('button', name='Delete my account').click()
    page.get_by_label('Your password').fill('not my password')
    page.get_by_role('button', name='Delete my account for good').click()
    expect(page.get_by_text('Password is incorrect.')).to_be_visible()

    page.get_by_label('Your password').fill(PASSWORD)
    page.get_by_role('button', name='Delete my account for good').click()
    page.wait_for_url('**/account-deleted')
    expect(page.get_by_text('Your account was deleted')).to_be_visible()
    # Stay a few seconds: the ended session must not send the page on to the sign-in page.
    page.wait_for_timeout(2500)
    assert page.url.endswith('/account-deleted')

    page.goto('/exams')
    page.wait_for_url('**/login')
    page.get_by_label('Email').fill(email)
    page.get_by_label('Password', exact=True).fill(PASSWORD)
    page.locator('.q-card').get_by_role('button', name='Sign in').click()
    expect(page.get_by_text('Email or password is incorrect.')).to_be_visible()
