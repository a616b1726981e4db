"""Account pages as people use them: forgotten password, reset link, invitation, email confirmation,
password change on the profile, and deactivation while the account's pages are open."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from nicegui.testing import User
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import Notification, TokenPurpose
from secondopinion.models.base import utcnow
from secondopinion.services import account_lifecycle, account_links, accounts, sessions
from secondopinion.services.errors import ValidationError
from tests.conftest import PASSWORD, open_session
from tests.services.flow import draft_with_link, paid

from .helpers import emailed_link, set_value, sign_in, wait_for_board_case
from .test_admin_pages import wait_for_badge

NEW_PASSWORD = 'a brand new passphrase'
# Open pages of an ended session must leave within this many seconds (they check once a second).
LEAVE_LIMIT_SECONDS = 3.0


def reset_emails() -> int:
    with db.session_scope() as session:
        return len(session.scalars(select(Notification.id).where(Notification.template == 'password_reset')).all())


async def choose_password(user: User, password: str, repeat: str | None = None) -> None:
    set_value(user, 'new-password', password)
    set_value(user, 'repeat-password', password if repeat is None else repeat)
    user.find(marker='save-password').click()


async def wait_for_sign_in_page(user: User) -> float:
    """Wait until the user's page shows the sign-in form; return how long that took.

    Tests that use it have a single simulated User, because NiceGUI's simulation sends the
    `ui.navigate` calls of every open page to the User that was used last, so a page that leaves
    could take another User's page along.
    """
    started = time.monotonic()
    await user.should_see(marker='sign-in', retries=int(LEAVE_LIMIT_SECONDS * 10))
    return time.monotonic() - started


# --- forgotten password and reset link -------------------------------------------------------------

async def test_forgot_password_same_answer(user: User, make_patient):
    make_patient(email='known@example.org')
    await user.open('/login')
    await user.should_see('Forgot your password?')

    await user.open('/forgot-password')
    user.find(marker='email').type('nobody@example.org')
    user.find(marker='send-reset-link').click()
    await user.should_see('If an account exists for nobody@example.org, we sent a link to it.')
    assert reset_emails() == 0

    await user.open('/forgot-password')
    user.find(marker='email').type('known@example.org')
    user.find(marker='send-reset-link').click()
    await user.should_see('If an account exists for known@example.org, we sent a link to it.')
    assert reset_emails() == 1


async def test_forgot_password_invalid_email(user: User):
    await user.open('/forgot-password')
    user.find(marker='email').type('not-an-address')
    user.find(marker='send-reset-link').click()
    await user.should_see('Email address "not-an-address" is invalid')


async def test_reset_link_signs_out_everywhere(user: User, make_patient):
    make_patient(email='reset@example.org')
    await sign_in(user, 'reset@example.org')
    await user.should_see('My examinations')

    account_lifecycle.request_password_reset(email='reset@example.org', client_address=None)
    link = emailed_link('reset@example.org', '/reset-password')
    account_lifecycle.reset_password(token=link.split('token=')[1], new_password=NEW_PASSWORD)
    assert await wait_for_sign_in_page(user) < LEAVE_LIMIT_SECONDS

    await sign_in(user, 'reset@example.org', NEW_PASSWORD)
    await user.should_see('My examinations')


async def test_reset_page_sets_password(user: User, make_patient):
    make_patient(email='page@example.org')
    account_lifecycle.request_password_reset(email='page@example.org', client_address=None)
    link = emailed_link('page@example.org', '/reset-password')
    await user.open(link)
    await user.should_see(marker='save-password')
    # Opening the page used nothing up: mail scanners open links too.
    assert account_lifecycle.reset_link_works(link.split('token=')[1])

    await choose_password(user, NEW_PASSWORD)
    await user.should_see(marker='reset-done')
    await user.should_see(marker='go-sign-in')
    assert accounts.authenticate(email='page@example.org', password=NEW_PASSWORD)


async def test_reset_link_used_twice(user: User, make_patient):
    make_patient(email='twice@example.org')
    account_lifecycle.request_password_reset(email='twice@example.org', client_address=None)
    link = emailed_link('twice@example.org', '/reset-password')
    await user.open(link)
    await choose_password(user, NEW_PASSWORD)
    await user.should_see(marker='reset-done')

    await user.open(link)
    await user.should_see(marker='link-invalid')
    await user.should_not_see(marker='save-password')
    user.find(marker='new-link').click()
    await user.should_see(marker='send-reset-link')


async def test_reset_link_expired_or_unknown(user: User, make_patient):
    patient = make_patient(email='late@example.org')
    with db.session_scope() as session:
        secret = account_links.issue(session, patient.user_id, TokenPurpose.RESET_PASSWORD,
                                     now=utcnow() - timedelta(hours=2))
    for link in (f'/reset-password?token={secret}', '/reset-password?token=unknown', '/reset-password'):
        await user.open(link)
        await user.should_see('This password reset link does not work')
        await user.should_see(marker='new-link')


async def test_reset_passwords_must_match(user: User, make_patient):
    patient = make_patient(email='typo@example.org')
    with db.session_scope() as session:
        secret = account_links.issue(session, patient.user_id, TokenPurpose.RESET_PASSWORD)
    await user.open(f'/reset-password?token={secret}')
    await choose_password(user, NEW_PASSWORD, repeat=NEW_PASSWORD + 'x')
    await user.should_see('The two passwords are different.')
    await choose_password(user, 'short')
    await user.should_see('Password must have at least 12 characters.')
    assert account_lifecycle.reset_link_works(secret)


# --- doctor invitations ----------------------------------------------------------------------------

async def test_invited_doctor_sets_password_and_lands_on_board(user: User, admin):
    accounts.create_doctor(actor=admin, full_name='Dr. Nora New', email='nora@example.org', license_number='N-1',
                           specialty='Radiology')
    await sign_in(user, 'nora@example.org', PASSWORD)
    await user.should_see('Email or password is incorrect.')

    await user.open(emailed_link('nora@example.org', '/invite'))
    await choose_password(user, NEW_PASSWORD)
    await user.should_see(marker='board-empty')


async def test_invite_expired(user: User, admin):
    info = accounts.create_doctor(actor=admin, full_name='Dr. Old Link', email='old@example.org',
                                  license_number='O-1', specialty='Radiology')
    with db.session_scope() as session:
        secret = account_links.issue(session, info.user_id, TokenPurpose.INVITE, now=utcnow() - timedelta(days=8))
    await user.open(f'/invite?token={secret}')
    await user.should_see('This invitation link does not work')
    await user.should_see('Ask the administrator of the practice to send you a new invitation.')


async def test_admin_resends_invite(user: User, create_user, admin):
    accounts.create_doctor(actor=admin, full_name='Dr. Resent', email='resent@example.org', license_number='R-1',
                           specialty='Radiology')
    first_link = emailed_link('resent@example.org', '/invite')
    await sign_in(user, 'admin@example.org')
    await user.should_see(marker='doctor-state-resent@example.org')
    assert user.find(marker='doctor-state-resent@example.org').elements.pop().text == 'invited'

    user.find(marker='resend-invite-resent@example.org').click()
    await user.should_see('We sent a new invitation to resent@example.org.')
    second_link = emailed_link('resent@example.org', '/invite')
    assert second_link != first_link

    doctor = create_user()
    await doctor.open(first_link)
    await doctor.should_see(marker='link-invalid')
    await doctor.open(second_link)
    await choose_password(doctor, NEW_PASSWORD)
    await doctor.should_see(marker='board-empty')

    await user.open('/admin')
    await user.should_see(marker='doctor-state-resent@example.org')
    assert user.find(marker='doctor-state-resent@example.org').elements.pop().text == 'active'


async def test_create_doctor_form_sends_invite(user: User, admin):
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find(marker='doctor-name').type('Dr. Form Made')
    user.find(marker='doctor-email').type('form@example.org')
    user.find(marker='doctor-license').type('F-1')
    user.find(marker='create-doctor-button').click()
    await user.should_see(marker='doctor-state-form@example.org')
    assert emailed_link('form@example.org', '/invite').startswith('/invite?token=')


# --- email confirmation ----------------------------------------------------------------------------

async def test_unconfirmed_patient_sees_banner_and_cannot_pay(user: User, make_patient):
    patient = make_patient(email='fresh@example.org', verified=False)
    await sign_in(user, 'fresh@example.org')
    await user.should_see(marker='verify-banner')

    # The registration email went out moments ago, so "send again" waits a minute.
    user.find(marker='resend-verification').click()
    await user.should_see('We sent you a link less than a minute ago.')

    await user.open(f'/exams/{draft_with_link(patient)}/edit')
    await user.should_see(marker='payment-blocked')
    user.find(marker='submit').click()
    await user.should_see('Confirm your email address before you pay')

    link = emailed_link('fresh@example.org', '/verify-email')
    await user.open(link)
    await user.should_see(marker='confirm-email')
    assert not account_lifecycle.email_status(actor=patient).verified  # opening the page confirmed nothing
    user.find(marker='confirm-email').click()
    await user.should_see('Your email address fresh@example.org is confirmed.')
    user.find(marker='verify-continue').click()
    await user.should_see('My examinations')
    await user.should_not_see(marker='verify-banner')


async def test_confirmation_link_used_twice(user: User, make_patient):
    make_patient(email='again@example.org', verified=False)
    link = emailed_link('again@example.org', '/verify-email')
    await user.open(link)
    user.find(marker='confirm-email').click()
    await user.should_see(marker='verify-done')
    await user.open(link)
    await user.should_see('This confirmation link does not work')


async def test_verified_patient_sees_no_banner(user: User, make_patient):
    make_patient(email='done@example.org')
    await sign_in(user, 'done@example.org')
    await user.should_see('My examinations')
    await user.should_not_see(marker='verify-banner')


# --- password change on the profile ----------------------------------------------------------------

async def test_profile_password_change(user: User, make_patient):
    patient = make_patient(email='change@example.org')
    elsewhere = open_session(patient.user_id)
    await sign_in(user, 'change@example.org')
    await user.should_see('My examinations')
    await user.open('/profile')

    user.find(marker='current-password').type('not my password')
    user.find(marker='new-password').type(NEW_PASSWORD)
    user.find(marker='repeat-password').type(NEW_PASSWORD)
    user.find(marker='change-password').click()
    await user.should_see('Current password is incorrect.')
    assert sessions.resolve(elsewhere) is not None

    set_value(user, 'current-password', PASSWORD)
    user.find(marker='change-password').click()
    await user.should_see('Your password was changed, and we signed you out of 1 other session.')
    assert sessions.resolve(elsewhere) is None

    # This page keeps its session.
    await asyncio.sleep(1.5)
    await user.should_see(marker='password-card')
    await user.open('/exams')
    await user.should_see('My examinations')
    assert accounts.authenticate(email='change@example.org', password=NEW_PASSWORD)


async def test_doctor_profile_has_password_change(user: User, make_doctor):
    make_doctor(email='doc@example.org')
    await sign_in(user, 'doc@example.org')
    await user.should_see(marker='board-empty')
    await user.open('/profile')
    await user.should_see(marker='change-password')
    await user.should_not_see(marker='channels')


# --- deactivation while the account's pages are open -----------------------------------------------

async def test_doctor_deactivated_mid_session(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='leaving@example.org')
    exam_id = paid(make_patient())
    await sign_in(user, 'leaving@example.org')
    await wait_for_board_case(user, exam_id)
    cookie = user.http_client.cookies.get(sessions.COOKIE_NAME)
    assert cookie
    assert (await user.http_client.post('/auth/activity')).status_code == 204

    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    assert await wait_for_sign_in_page(user) < LEAVE_LIMIT_SECONDS

    # The same cookie gets nothing any more.
    user.http_client.cookies.set(sessions.COOKIE_NAME, cookie)
    assert (await user.http_client.post('/auth/activity')).status_code == 401
    assert (await user.http_client.get(f'/api/exams/{exam_id}/images.zip')).status_code == 404
    await user.open('/doctor')
    await user.should_see(marker='sign-in')


async def test_admin_panel_deactivates_doctor(user: User, admin, make_doctor):
    doctor = make_doctor(email='panel@example.org')
    doctor_cookie = open_session(doctor.user_id)
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find(marker='toggle-doctor-panel@example.org').click()
    user.find(marker='doctor-confirm-confirm').click()
    await wait_for_badge(user, 'doctor-state-panel@example.org', 'deactivated')
    assert sessions.resolve(doctor_cookie) is None


async def test_admin_panel_deactivates_patient(user: User, admin, make_patient):
    patient = make_patient(email='patient@example.org')
    patient_cookie = open_session(patient.user_id)
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find('Patients').click()
    user.find(marker='toggle-patient-patient@example.org').click()
    user.find(marker='patient-confirm-confirm').click()
    await wait_for_badge(user, 'patient-state-patient@example.org', 'deactivated')
    assert sessions.resolve(patient_cookie) is None
    with pytest.raises(ValidationError, match='This account is deactivated'):
        accounts.authenticate(email='patient@example.org', password=PASSWORD)

    user.find(marker='toggle-patient-patient@example.org').click()
    await wait_for_badge(user, 'patient-state-patient@example.org', 'active')
    assert accounts.authenticate(email='patient@example.org', password=PASSWORD).user_id == patient.user_id
