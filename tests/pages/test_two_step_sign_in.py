"""Two-step sign-in on the pages: the code step, forced enrollment of admins, the profile section, admin reset."""

from __future__ import annotations

import pyotp
from nicegui.testing import User
from sqlalchemy import func, select

from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, User as UserRow, UserSession
from secondopinion.services import accounts, sessions, totp
from tests.conftest import PASSWORD
from tests.totp_codes import ADMIN_TOTP_SECRET, fresh_code, fresh_code_for

from .helpers import dialog_is_open, dialog_text, open_page, set_value, sign_in


def _enroll(actor) -> str:  # noqa: ANN001
    enrollment = totp.begin_enrollment(actor=actor)
    totp.confirm_enrollment(actor=actor, code=pyotp.TOTP(enrollment.secret).now())
    return enrollment.secret


def _session_rows() -> list[UserSession]:
    with session_scope() as session:
        rows = session.scalars(select(UserSession)).all()
        session.expunge_all()
        return list(rows)


def _has_second_factor(email: str) -> bool:
    with session_scope() as session:
        return session.scalars(select(UserRow.totp_secret).where(UserRow.email == email)).one() is not None


def _wrong_code(secret: str) -> str:
    return f'{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}'


async def _password_step(user: User, email: str, password: str = PASSWORD) -> None:
    await user.open('/login')
    user.find(marker='email').type(email)
    user.find(marker='password').type(password)
    user.find(marker='sign-in').click()


async def test_sign_in_with_code(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    secret = _enroll(alice)
    await _password_step(user, 'alice@example.org')
    await user.should_see('Enter the 6-digit code from your authenticator app.')
    user.find(marker='totp-code').type(fresh_code_for('alice@example.org', secret))
    user.find(marker='totp-submit').click()
    await user.should_see('My examinations')
    [row] = _session_rows()
    assert row.method == 'password+totp'
    assert row.activated_at is not None


async def test_no_session_before_the_code(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    _enroll(alice)
    await _password_step(user, 'alice@example.org')
    await user.should_see(marker='totp-code')
    assert _session_rows() == []
    assert sessions.COOKIE_NAME not in user.http_client.cookies
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == 'sign_in.succeeded')) == 0
    # Opening a page of patients in the same browser leads back to the sign-in page.
    await user.open('/exams')
    await user.should_see(marker='email')
    await user.should_not_see('My examinations')


async def test_wrong_code_shows_message(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    secret = _enroll(alice)
    await _password_step(user, 'alice@example.org')
    user.find(marker='totp-code').type(_wrong_code(secret))
    user.find(marker='totp-submit').click()
    await user.should_see('The code is incorrect or was already used. Enter the 6-digit code that your '
                          'authenticator app shows now.')
    user.find(marker='totp-code').type('12 34')
    user.find(marker='totp-submit').click()
    await user.should_see('The code must be the 6 digits that your authenticator app shows')
    assert _session_rows() == []
    # The right code still works after the wrong ones.
    user.find(marker='totp-code').type(fresh_code_for('alice@example.org', secret))
    user.find(marker='totp-submit').click()
    await user.should_see('My examinations')


async def test_back_returns_to_password(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    _enroll(alice)
    await _password_step(user, 'alice@example.org')
    user.find(marker='totp-back').click()
    await user.should_not_see(marker='totp-code')
    await user.should_see(marker='sign-in')
    assert _session_rows() == []


async def test_admin_forced_to_enroll(user: User):
    info = accounts.create_admin(full_name='Root Admin', email='root@example.org', password=PASSWORD)
    await _password_step(user, 'root@example.org')
    await user.should_see('Admins need two-step sign-in.', retries=50)
    await user.should_see(marker='totp-qr')
    key = user.find(marker='totp-secret').elements.pop().text
    assert len(key.split(' ')[0]) == 4
    # Leaving for another page without a code gives no session.
    await user.open('/admin')
    await user.should_see(marker='email')
    assert _session_rows() == []

    await _password_step(user, 'root@example.org')
    key = user.find(marker='totp-secret').elements.pop().text
    user.find(marker='totp-code').type(pyotp.TOTP(key.replace(' ', '')).now())
    user.find(marker='totp-submit').click()
    await user.should_see('Admin panel')
    with session_scope() as session:
        row = session.get(UserRow, info.user_id)
        assert row is not None
        assert row.totp_enabled_at is not None
    [session_row] = [row for row in _session_rows() if row.activated_at is not None]
    assert session_row.method == 'password+totp'


async def test_enrolled_admin_asked_for_code_only(user: User, admin):
    await _password_step(user, 'admin@example.org')
    await user.should_see(marker='totp-code')
    await user.should_not_see(marker='totp-qr')
    user.find(marker='totp-code').type(fresh_code_for('admin@example.org', ADMIN_TOTP_SECRET))
    user.find(marker='totp-submit').click()
    await user.should_see('Admin panel')


async def test_patient_turns_on_and_off_in_profile(user: User, make_patient):
    make_patient('Alice', email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('My examinations')
    await user.open('/profile')
    await user.should_see('Two-step sign-in')
    await user.should_see('Off.')
    user.find(marker='totp-start').click()
    await user.should_see(marker='totp-qr')
    secret = user.find(marker='totp-secret').elements.pop().text.replace(' ', '')
    user.find(marker='totp-code').type(_wrong_code(secret))
    user.find(marker='totp-confirm').click()
    await user.should_see('The code is incorrect or was already used.')
    user.find(marker='totp-code').type(pyotp.TOTP(secret).now())
    user.find(marker='totp-confirm').click()
    await user.should_see('Two-step sign-in is on.')
    await user.should_see(marker='totp-disable')

    user.find(marker='totp-password').type('not the password')
    user.find(marker='totp-code').type(fresh_code_for('alice@example.org', secret))
    user.find(marker='totp-disable').click()
    await user.should_see('The password is incorrect. Enter your current password.')
    user.find(marker='totp-password').type(PASSWORD)
    user.find(marker='totp-code').type(fresh_code_for('alice@example.org', secret))
    user.find(marker='totp-disable').click()
    await user.should_see('Two-step sign-in is off.')
    await user.should_see('Off.')


async def test_admin_profile_cannot_turn_off(user: User, admin):
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    await user.open('/profile')
    await user.should_see('Admins must keep two-step sign-in.')
    await user.should_not_see(marker='totp-disable')
    await user.should_not_see(marker='totp-start')
    await user.should_not_see(marker='channels')


async def test_profile_needs_sign_in(user: User):
    await user.open('/profile')
    await user.should_see(marker='email')
    await user.should_not_see('Two-step sign-in')


async def test_admin_resets_lost_phone(user: User, admin, make_patient, create_user):
    alice = make_patient('Alice', email='alice@example.org')
    _enroll(alice)
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find(marker='totp-reset-button').click()
    await user.should_see('Enter the email address of the account.')
    assert not dialog_is_open(user, 'totp-reset-confirm')

    user.find(marker='totp-reset-email').type('nobody@example.org')
    user.find(marker='totp-reset-button').click()
    user.find(marker='totp-reset-confirm-confirm').click()
    await user.should_see('Account nobody@example.org not found.')

    # The reset waits until the admin confirms it in the dialog, and Cancel keeps the second factor.
    set_value(user, 'totp-reset-email', 'alice@example.org')
    user.find(marker='totp-reset-button').click()
    await user.should_see('Reset the two-step sign-in of alice@example.org?')
    assert dialog_is_open(user, 'totp-reset-confirm')
    assert 'signs in with the password alone' in dialog_text(user, 'totp-reset-confirm')
    assert _has_second_factor('alice@example.org')
    user.find(marker='totp-reset-confirm-cancel').click()
    assert not dialog_is_open(user, 'totp-reset-confirm')
    assert _has_second_factor('alice@example.org')

    user.find(marker='totp-reset-button').click()
    user.find(marker='totp-reset-confirm-confirm').click()
    await user.should_see('Two-step sign-in of alice@example.org was reset.')
    assert not _has_second_factor('alice@example.org')

    # Alice signs in with her password alone now.
    patient = create_user()
    await sign_in(patient, 'alice@example.org')
    await patient.should_see('My examinations')


async def test_doctor_cannot_reset(user: User, make_doctor):
    make_doctor('Dr. Bob', email='bob@example.org')
    await sign_in(user, 'bob@example.org')
    assert (await open_page(user, '/admin')).status == 404
    await user.should_not_see(marker='totp-reset')


async def test_code_cannot_be_used_twice_on_page(user: User, make_patient, create_user):
    alice = make_patient('Alice', email='alice@example.org')
    secret = _enroll(alice)
    with session_scope() as session:
        last_step = session.scalar(select(UserRow.totp_last_step).where(UserRow.id == alice.user_id))
    code = fresh_code(secret, last_step)
    await _password_step(user, 'alice@example.org')
    user.find(marker='totp-code').type(code)
    user.find(marker='totp-submit').click()
    await user.should_see('My examinations')
    other = create_user()
    await _password_step(other, 'alice@example.org')
    other.find(marker='totp-code').type(code)
    other.find(marker='totp-submit').click()
    await other.should_see('The code is incorrect or was already used.')
