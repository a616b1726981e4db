"""Switching to Turkish on the landing page, registering, and reading the first signed-in page in Turkish."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.conftest import PASSWORD

from .conftest import DESKTOP, PHONE, assert_header_one_row, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def test_turkish_from_landing_to_first_page(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP, locale='en-US')
    page.goto('/')
    expect(page.locator('html')).to_have_attribute('lang', 'en-US')
    expect(page.get_by_text('A second opinion on your scan, from a qualified radiologist')).to_be_visible()

    page.locator('a[hreflang=tr]').click()
    expect(page.get_by_text('Görüntüleriniz için uzman bir radyologdan ikinci görüş')).to_be_visible()
    expect(page.locator('html')).to_have_attribute('lang', 'tr')

    page.get_by_role('button', name='Hesap oluşturun').first.click()
    page.wait_for_url('**/register')
    expect(page.get_by_text('Hasta hesabı oluşturun')).to_be_visible()
    page.get_by_label('Ad soyad').fill('Ayşe Kaya')
    page.get_by_label('E-posta').fill(unique_email('turkish'))
    page.locator('input[type=date]').fill('1985-01-02')
    page.get_by_label(re.compile(r'^Şifre \(en az')).fill(PASSWORD)
    page.get_by_role('button', name='Hesap oluştur', exact=True).click()

    page.wait_for_url('**/exams')
    expect(page.get_by_text('Henüz tetkikiniz yok.')).to_be_visible()
    expect(page.get_by_role('button', name='Yeni tetkik başlat')).to_be_visible()
    expect(page.locator('html')).to_have_attribute('lang', 'tr')


def test_browser_language_and_phone_header(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE, locale='tr-TR')
    page.goto('/login')
    expect(page.get_by_text('Şifrenizi mi unuttunuz?')).to_be_visible()
    assert_header_one_row(page)
    page.locator('a[hreflang=en]').click()
    expect(page.get_by_text('Forgot your password?')).to_be_visible()
    assert_header_one_row(page)
