"""The show-password button of every password field works from the keyboard, with a name that says what it does."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .conftest import DESKTOP, emailed_link, register_patient, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def _check_toggle_by_keys(page: sync_api.Page, field: sync_api.Locator, where: str) -> None:
    """Focus `field`, Tab to its button, show the text with Enter and hide it again with Space."""
    field.focus()
    field.press_sequentially('typed secret', delay=10)
    page.keyboard.press('Tab')
    focused = page.locator(':focus')
    expect(focused, f'Tab from the field on {where} reaches its button').to_have_accessible_name('Show password')
    expect(focused).to_have_role('button')

    page.keyboard.press('Enter')
    expect(field, f'Enter on {where} shows the password').to_have_attribute('type', 'text')
    expect(focused).to_have_accessible_name('Hide password')
    expect(field).to_have_value('typed secret')

    page.keyboard.press('Space')
    expect(field, f'Space on {where} hides the password').to_have_attribute('type', 'password')
    expect(focused).to_have_accessible_name('Show password')


def test_password_toggles_by_keyboard(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP)

    page.goto('/login')
    _check_toggle_by_keys(page, page.get_by_label('Password', exact=True), 'the sign-in page')
    expect(page).to_have_url(re.compile(r'/login$'))

    page.goto('/register')
    _check_toggle_by_keys(page, page.get_by_label(re.compile(r'^Password \(at least')), 'the registration page')

    email = unique_email('toggle')
    page.get_by_label(re.compile(r'^Password \(at least')).fill('')
    register_patient(page, name='Kira Keyboard', email=email)
    page.goto('/profile')
    _check_toggle_by_keys(page, page.get_by_label('Current password'), 'the profile page, current password')
    _check_toggle_by_keys(page, page.get_by_label(re.compile(r'^New password')), 'the profile page, new password')

    reset = open_page(**DESKTOP)
    reset.goto('/forgot-password')
    reset.get_by_label('Email').fill(email)
    reset.get_by_role('button', name='Send the link').click()
    reset.goto(emailed_link(email, '/reset-password'))
    _check_toggle_by_keys(reset, reset.get_by_label(re.compile(r'^New password')), 'the password reset page')
