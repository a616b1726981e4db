"""Two-step sign-in in a real browser: set up on the profile page of a phone, then sign in with a code."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
import pytest

from .conftest import (
    PASSWORD,
    PHONE,
    assert_header_one_row,
    assert_no_horizontal_scroll,
    register_patient,
    remember_totp,
    save_screenshot,
    sign_in,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def test_patient_sets_up_and_uses_code(open_page: Callable[..., sync_api.Page]) -> None:
    email = unique_email('tessa')
    page = open_page(**PHONE)
    page.goto('/register')
    register_patient(page, name='Tessa Twostep', email=email)

    page.goto('/profile')
    page.get_by_role('button', name='Set up two-step sign-in').click()
    qr = page.locator('.totp-qr svg')
    expect(qr).to_be_visible()
    assert qr.bounding_box()['width'] > 150, 'the QR code is too small to scan'
    assert_no_horizontal_scroll(page)
    assert_header_one_row(page)
    save_screenshot(page, 'phone-profile-two-step-setup')
    secret = page.get_by_text('Key for typing').locator('xpath=following-sibling::*[1]') \
        .inner_text().replace(' ', '')
    generator = pyotp.TOTP(secret)
    step = generator.timecode(time.time())
    page.get_by_label('6-digit code').fill(generator.generate_otp(step))
    page.get_by_role('button', name='Turn on').click()
    expect(page.get_by_text('Two-step sign-in is on.')).to_be_visible()
    remember_totp(email, secret, step)

    # A new browser: the password alone leads to the code step, and no further.
    other = open_page(**PHONE)
    other.goto('/login')
    other.get_by_label('Email').fill(email)
    other.get_by_label('Password', exact=True).fill(PASSWORD)
    other.locator('.q-card').get_by_role('button', name='Sign in').click()
    expect(other.get_by_label('6-digit code')).to_be_visible()
    other.goto('/exams')
    other.wait_for_url('**/login')
    assert not [cookie for cookie in other.context.cookies() if cookie['name'] == 'secondopinion_session']

    sign_in(other, email)
    expect(other.get_by_role('main').get_by_text('My examinations')).to_be_visible()
    assert [cookie for cookie in other.context.cookies() if cookie['name'] == 'secondopinion_session']
