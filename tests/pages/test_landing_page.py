"""The landing page "/" for visitors and for signed-in users, with prices and turnaround from the settings."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from secondopinion.config import reset_settings
from secondopinion.pages.landing import format_duration
from secondopinion.services import sessions
from tests.conftest import open_session


@pytest.fixture
def custom_prices(monkeypatch) -> None:
    monkeypatch.setenv('SECONDOPINION_CURRENCY', 'CHF')
    monkeypatch.setenv('SECONDOPINION_PRICES_CENTS', '{"CT": 12345, "MR": 20000}')
    monkeypatch.setenv('SECONDOPINION_DEFAULT_PRICE_CENTS', '9900')
    monkeypatch.setenv('SECONDOPINION_URGENT_SURCHARGE_PERCENT', '20')
    monkeypatch.setenv('SECONDOPINION_REPORT_TURNAROUND_HOURS', '96')
    monkeypatch.setenv('SECONDOPINION_URGENT_REPORT_TURNAROUND_HOURS', '12')
    reset_settings()


async def test_landing_explains_service(user: User):
    await user.open('/')
    for heading in ('How it works', 'Prices', 'When you get your report', 'Our radiologists', 'Your privacy'):
        await user.should_see(heading)
    await user.should_see('1. Upload your images')
    await user.should_see('4. A radiologist reports')
    await user.should_see('license number')
    await user.should_see('download all your data')
    await user.should_see(marker='landing-register')
    await user.should_see(marker='landing-sign-in')
    await user.should_see(marker='closing-register')
    await user.should_not_see('Go to my page')


async def test_landing_default_prices(user: User):
    await user.open('/')
    await user.should_see('CT (computed tomography)')
    await user.should_see('150.00 EUR')
    await user.should_see('225.00 EUR')
    await user.should_see('Any other examination')
    await user.should_see('100.00 EUR')
    await user.should_see('Urgent cases cost 50% more and are reviewed first.')
    await user.should_see('Routine cases: within 3 days of your payment.')
    await user.should_see('Urgent cases: within 24 hours of your payment.')


async def test_landing_prices_follow_settings(user: User, custom_prices):
    await user.open('/')
    await user.should_see('MRI (magnetic resonance)')
    # CT: 123.45, plus 20% rounded down to whole cents for urgent cases.
    await user.should_see('123.45 CHF')
    await user.should_see('148.14 CHF')
    await user.should_see('200.00 CHF')
    await user.should_see('240.00 CHF')
    # Any other modality: the default price.
    await user.should_see('99.00 CHF')
    await user.should_see('118.80 CHF')
    await user.should_not_see('150.00 EUR')
    await user.should_not_see('Ultrasound')
    await user.should_see('Urgent cases cost 20% more and are reviewed first.')
    await user.should_see('Routine cases: within 4 days of your payment.')
    await user.should_see('Urgent cases: within 12 hours of your payment.')


async def test_landing_register_button(user: User):
    await user.open('/')
    user.find(marker='landing-register').click()
    await user.should_see(marker='register')


async def test_landing_sign_in_button(user: User):
    await user.open('/')
    user.find(marker='landing-sign-in').click()
    await user.should_see(marker='sign-in')


async def test_landing_for_signed_in_patient(user: User, make_patient):
    patient = make_patient('Lena Landing')
    user.http_client.cookies.set(sessions.COOKIE_NAME, open_session(patient.user_id))
    await user.open('/')
    await user.should_see('Prices')
    await user.should_not_see(marker='landing-register')
    await user.should_not_see(marker='closing-register')
    user.find('Go to my page').click()
    await user.should_see('My examinations')


@pytest.mark.parametrize(('hours', 'words'), [(1, '1 hour'), (24, '24 hours'), (36, '36 hours'),
                                              (48, '2 days'), (60, '60 hours'), (168, '7 days')])
def test_format_duration(hours: int, words: str):
    assert format_duration(hours) == words
