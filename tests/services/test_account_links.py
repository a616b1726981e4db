"""Single-use account links and their flows: verification, reset, invitation, password change, deactivation."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.log_redaction import SecretParameterFilter, redact_url_secrets
from secondopinion.models import AccountToken, AuditEvent, Notification, SignInAttempt, TokenPurpose, User
from secondopinion.models.base import utcnow
from secondopinion.services import account_lifecycle, account_links, accounts, examinations, notifications, sessions
from secondopinion.services.account_lifecycle import LinkInvalidError
from secondopinion.services.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from secondopinion.services.throttle import SignInThrottledError
from tests.conftest import PASSWORD, open_session
from tests.services.flow import draft_with_link

NEW_PASSWORD = 'a brand new passphrase'


def queued_link(user_id: int, path: str) -> str:
    """Return the secret of the newest link to `path` in an email queued for the user and not yet sent."""
    with db.session_scope() as session:
        bodies = session.scalars(select(Notification.body_text).where(Notification.user_id == user_id)
                                 .order_by(Notification.id.desc())).all()
    for body in bodies:
        match = re.search(re.escape(path) + r'\?token=([A-Za-z0-9_\-]+)', body)
        if match:
            return match.group(1)
    raise AssertionError(f'no queued email to user {user_id} links to {path}')


def issue(user_id: int, purpose: str, *, age: timedelta = timedelta(0)) -> str:
    """Issue a link as if it had been issued `age` ago."""
    with db.session_scope() as session:
        return account_links.issue(session, user_id, purpose, now=utcnow() - age)


def templates_sent_to(user_id: int) -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(Notification.template).where(Notification.user_id == user_id)
                                    .order_by(Notification.id)))


def load_user(user_id: int) -> User:
    with db.session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        session.expunge(user)
        return user


def audit_actions(user_id: int) -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(user_id))
                                    .order_by(AuditEvent.id)))


# --- the links themselves --------------------------------------------------------------------------

def test_only_digest_is_stored(make_patient):
    patient = make_patient()
    secret = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    with db.session_scope() as session:
        hashes = session.scalars(select(AccountToken.token_hash)).all()
    assert secret not in hashes
    assert account_links.digest(secret) in hashes


def test_lifetimes():
    assert account_links.LIFETIMES[TokenPurpose.VERIFY_EMAIL] == timedelta(hours=48)
    assert account_links.LIFETIMES[TokenPurpose.RESET_PASSWORD] == timedelta(hours=1)
    assert account_links.LIFETIMES[TokenPurpose.INVITE] == timedelta(days=7)


def test_consume_works_once(make_patient):
    patient = make_patient()
    secret = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    with db.session_scope() as session:
        first = account_links.consume(session, secret, TokenPurpose.RESET_PASSWORD)
    with db.session_scope() as session:
        second = account_links.consume(session, secret, TokenPurpose.RESET_PASSWORD)
    assert first is not None
    assert first.user_id == patient.user_id
    assert second is None


def test_two_clicks_at_once_one_wins(make_patient):
    patient = make_patient(email='race@example.org')
    secret = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click(password: str) -> None:
        barrier.wait()
        try:
            account_lifecycle.reset_password(token=secret, new_password=password)
            outcomes.append(password)
        except LinkInvalidError:
            outcomes.append('rejected')

    threads = [threading.Thread(target=click, args=(password,))
               for password in ('first new passphrase', 'second new passphrase')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes).count('rejected') == 1
    winner = next(outcome for outcome in outcomes if outcome != 'rejected')
    accounts.authenticate(email='race@example.org', password=winner)


def test_consume_checks_purpose(make_patient):
    patient = make_patient()
    secret = issue(patient.user_id, TokenPurpose.VERIFY_EMAIL)
    with db.session_scope() as session:
        assert account_links.consume(session, secret, TokenPurpose.RESET_PASSWORD) is None
        assert account_links.check(session, secret, TokenPurpose.VERIFY_EMAIL) is not None


def test_new_link_ends_older_ones(make_patient):
    patient = make_patient()
    old = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    new = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    with db.session_scope() as session:
        assert account_links.check(session, old, TokenPurpose.RESET_PASSWORD) is None
        assert account_links.check(session, new, TokenPurpose.RESET_PASSWORD) is not None


def test_check_ignores_garbage():
    with db.session_scope() as session:
        assert account_links.check(session, '', TokenPurpose.INVITE) is None
        assert account_links.check(session, None, TokenPurpose.INVITE) is None
        assert account_links.check(session, 'x' * 500, TokenPurpose.INVITE) is None


# --- email verification ----------------------------------------------------------------------------

def test_registration_email_confirms_address(make_patient):
    patient = make_patient(verified=False)
    assert not account_lifecycle.email_status(actor=patient).verified
    secret = queued_link(patient.user_id, '/verify-email')
    assert account_lifecycle.verify_email(token=secret) == load_user(patient.user_id).email
    assert account_lifecycle.email_status(actor=patient).verified
    assert templates_sent_to(patient.user_id) == ['welcome']
    assert 'email.verified' in audit_actions(patient.user_id)


def test_verification_link_reused(make_patient):
    patient = make_patient(verified=False)
    secret = queued_link(patient.user_id, '/verify-email')
    account_lifecycle.verify_email(token=secret)
    with pytest.raises(LinkInvalidError, match='does not work any more'):
        account_lifecycle.verify_email(token=secret)


def test_verification_link_expired(make_patient):
    patient = make_patient(verified=False)
    secret = issue(patient.user_id, TokenPurpose.VERIFY_EMAIL, age=timedelta(hours=48, seconds=1))
    assert not account_lifecycle.verification_link_works(secret)
    with pytest.raises(LinkInvalidError):
        account_lifecycle.verify_email(token=secret)
    assert not account_lifecycle.email_status(actor=patient).verified


def test_other_users_link_verifies_only_its_owner(make_patient):
    owner = make_patient(verified=False)
    other = make_patient(verified=False)
    account_lifecycle.verify_email(token=queued_link(owner.user_id, '/verify-email'))
    assert account_lifecycle.email_status(actor=owner).verified
    assert not account_lifecycle.email_status(actor=other).verified


def test_verification_link_cannot_reset_password(make_patient):
    patient = make_patient(verified=False)
    secret = queued_link(patient.user_id, '/verify-email')
    with pytest.raises(LinkInvalidError):
        account_lifecycle.reset_password(token=secret, new_password=NEW_PASSWORD)
    accounts.authenticate(email=load_user(patient.user_id).email, password=PASSWORD)


def test_unverified_patient_drafts_but_cannot_submit(make_patient):
    patient = make_patient(verified=False)
    exam_id = draft_with_link(patient)
    with pytest.raises(ValidationError, match='Confirm your email address before you pay'):
        examinations.submit(actor=patient, examination_id=exam_id)
    account_lifecycle.verify_email(token=queued_link(patient.user_id, '/verify-email'))
    examinations.submit(actor=patient, examination_id=exam_id)
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == 'awaiting_payment'


def test_resend_verification_once_a_minute(make_patient):
    patient = make_patient(verified=False)
    first = queued_link(patient.user_id, '/verify-email')
    with db.session_scope() as session:
        # Move the registration link back in time, as if it had been sent two minutes ago.
        row = session.scalar(select(AccountToken).where(AccountToken.token_hash == account_links.digest(first)))
        row.created_at -= timedelta(minutes=2)

    account_lifecycle.resend_verification(actor=patient)
    with pytest.raises(ValidationError, match='less than a minute ago'):
        account_lifecycle.resend_verification(actor=patient)

    assert templates_sent_to(patient.user_id) == ['welcome', 'verify_email']
    assert not account_lifecycle.verification_link_works(first)
    account_lifecycle.verify_email(token=queued_link(patient.user_id, '/verify-email'))
    with pytest.raises(ConflictError, match='already confirmed'):
        account_lifecycle.resend_verification(actor=patient)


# --- password reset --------------------------------------------------------------------------------

def test_reset_request_same_for_unknown_email(make_patient):
    patient = make_patient(email='known@example.org')
    account_lifecycle.request_password_reset(email='nobody@example.org', client_address='127.0.0.1')
    account_lifecycle.request_password_reset(email='Known@Example.org', client_address='127.0.0.1')
    with db.session_scope() as session:
        templates = session.scalars(select(Notification.template).where(Notification.template == 'password_reset')
                                    ).all()
        unknown_audit = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == 'password_reset.requested', AuditEvent.object_type == 'email_sha256'))
    assert templates == ['password_reset']
    assert unknown_audit == 1
    assert queued_link(patient.user_id, '/reset-password')


def test_reset_request_rejects_invalid_email():
    with pytest.raises(ValidationError, match='is invalid'):
        account_lifecycle.request_password_reset(email='not an address', client_address=None)


def test_reset_ends_sessions_and_clears_throttle(make_patient):
    patient = make_patient(email='reset@example.org')
    cookies = [open_session(patient.user_id), open_session(patient.user_id)]
    for _ in range(3):
        with pytest.raises(ValidationError):
            accounts.authenticate(email='reset@example.org', password='wrong password here', client_address='10.0.0.9')
    account_lifecycle.request_password_reset(email='reset@example.org', client_address='10.0.0.9')

    account_lifecycle.reset_password(token=queued_link(patient.user_id, '/reset-password'),
                                     new_password=NEW_PASSWORD, client_address='10.0.0.9')

    assert all(sessions.resolve(cookie) is None for cookie in cookies)
    with db.session_scope() as session:
        account_counters = session.scalar(select(func.count()).select_from(SignInAttempt)
                                          .where(SignInAttempt.key_kind == 'account'))
    assert account_counters == 0
    assert load_user(patient.user_id).password_changed_at is not None
    assert 'password.reset' in audit_actions(patient.user_id)
    assert templates_sent_to(patient.user_id)[-1] == 'password_changed'
    accounts.authenticate(email='reset@example.org', password=NEW_PASSWORD)
    with pytest.raises(ValidationError, match='incorrect'):
        accounts.authenticate(email='reset@example.org', password=PASSWORD)


def test_reset_link_reused(make_patient):
    patient = make_patient(email='twice@example.org')
    account_lifecycle.request_password_reset(email='twice@example.org', client_address=None)
    secret = queued_link(patient.user_id, '/reset-password')
    account_lifecycle.reset_password(token=secret, new_password=NEW_PASSWORD)
    with pytest.raises(LinkInvalidError):
        account_lifecycle.reset_password(token=secret, new_password='yet another passphrase')
    accounts.authenticate(email='twice@example.org', password=NEW_PASSWORD)


def test_reset_link_expired(make_patient):
    patient = make_patient(email='late@example.org')
    secret = issue(patient.user_id, TokenPurpose.RESET_PASSWORD, age=timedelta(hours=1, seconds=1))
    assert not account_lifecycle.reset_link_works(secret)
    with pytest.raises(LinkInvalidError):
        account_lifecycle.reset_password(token=secret, new_password=NEW_PASSWORD)
    accounts.authenticate(email='late@example.org', password=PASSWORD)


def test_reset_link_unknown():
    with pytest.raises(LinkInvalidError):
        account_lifecycle.reset_password(token='no-such-link-secret', new_password=NEW_PASSWORD)


def test_reset_short_password_keeps_link(make_patient):
    patient = make_patient(email='short@example.org')
    secret = issue(patient.user_id, TokenPurpose.RESET_PASSWORD)
    with pytest.raises(ValidationError, match='at least 12 characters'):
        account_lifecycle.reset_password(token=secret, new_password='short')
    assert account_lifecycle.reset_link_works(secret)


def test_reset_limited_per_account(make_patient):
    patient = make_patient(email='many@example.org')
    for _ in range(account_lifecycle.RESET_MAX_PER_ACCOUNT + 2):
        account_lifecycle.request_password_reset(email='many@example.org', client_address=None)
    assert templates_sent_to(patient.user_id).count('password_reset') == account_lifecycle.RESET_MAX_PER_ACCOUNT


def test_reset_limited_per_address():
    for number in range(account_lifecycle.RESET_MAX_PER_ADDRESS):
        account_lifecycle.request_password_reset(email=f'someone{number}@example.org', client_address='10.1.2.3')
    with pytest.raises(ValidationError, match='Too many password reset requests'):
        account_lifecycle.request_password_reset(email='one-more@example.org', client_address='10.1.2.3')
    account_lifecycle.request_password_reset(email='one-more@example.org', client_address='10.9.9.9')


def test_reset_not_sent_to_deactivated_account(admin, make_patient):
    patient = make_patient(email='gone@example.org')
    accounts.set_user_active(actor=admin, user_id=patient.user_id, active=False)
    account_lifecycle.request_password_reset(email='gone@example.org', client_address=None)
    assert 'password_reset' not in templates_sent_to(patient.user_id)


# --- doctor invitations ----------------------------------------------------------------------------

def invite_doctor(admin, email: str = 'invited@example.org') -> int:  # noqa: ANN001
    accounts.create_doctor(actor=admin, full_name='Dr. Ines Invited', email=email, license_number='INV-1',
                           specialty='Radiology')
    with db.session_scope() as session:
        return session.scalar(select(User.id).where(User.email == email))


def test_invited_doctor_cannot_sign_in_before_accepting(admin):
    user_id = invite_doctor(admin)
    assert load_user(user_id).password_hash is None
    assert templates_sent_to(user_id) == ['doctor_invite']
    with pytest.raises(ValidationError, match='Email or password is incorrect'):
        accounts.authenticate(email='invited@example.org', password='')


def test_invite_accepted(admin):
    user_id = invite_doctor(admin)
    actor = account_lifecycle.accept_invite(token=queued_link(user_id, '/invite'), new_password=NEW_PASSWORD)
    assert actor.role == 'doctor'
    assert actor.doctor_id is not None
    user = load_user(user_id)
    assert user.email_verified_at is not None
    assert user.password_changed_at is not None
    assert accounts.authenticate(email='invited@example.org', password=NEW_PASSWORD).user_id == user_id
    with pytest.raises(LinkInvalidError):
        account_lifecycle.accept_invite(token=queued_link(user_id, '/invite'), new_password='another passphrase')


def test_invite_expired(admin):
    user_id = invite_doctor(admin)
    secret = issue(user_id, TokenPurpose.INVITE, age=timedelta(days=7, seconds=1))
    with pytest.raises(LinkInvalidError):
        account_lifecycle.accept_invite(token=secret, new_password=NEW_PASSWORD)
    assert load_user(user_id).password_hash is None


def test_resend_invite_ends_old_link(admin):
    user_id = invite_doctor(admin)
    old = queued_link(user_id, '/invite')
    with db.session_scope() as session:
        doctor_id = session.get(User, user_id).doctor.id
    account_lifecycle.resend_invite(actor=admin, doctor_id=doctor_id)
    new = queued_link(user_id, '/invite')
    assert new != old
    with pytest.raises(LinkInvalidError):
        account_lifecycle.accept_invite(token=old, new_password=NEW_PASSWORD)
    account_lifecycle.accept_invite(token=new, new_password=NEW_PASSWORD)
    with pytest.raises(ConflictError, match='already chosen a password'):
        account_lifecycle.resend_invite(actor=admin, doctor_id=doctor_id)


def test_resend_invite_admins_only(admin, make_doctor):
    doctor = make_doctor()
    with pytest.raises(PermissionDeniedError):
        account_lifecycle.resend_invite(actor=doctor, doctor_id=doctor.doctor_id)


def test_deactivated_doctor_cannot_accept_invite(admin):
    user_id = invite_doctor(admin)
    accounts.set_user_active(actor=admin, user_id=user_id, active=False)
    with pytest.raises(ValidationError, match='deactivated'):
        account_lifecycle.accept_invite(token=queued_link(user_id, '/invite'), new_password=NEW_PASSWORD)


# --- password change -------------------------------------------------------------------------------

def test_change_password_ends_other_sessions(make_patient):
    patient = make_patient(email='change@example.org')
    current_cookie, other_cookie = open_session(patient.user_id), open_session(patient.user_id)
    current = sessions.resolve(current_cookie)
    assert current is not None

    ended = account_lifecycle.change_password(actor=current, current_password=PASSWORD, new_password=NEW_PASSWORD)

    assert ended == 1
    assert sessions.resolve(current_cookie) is not None
    assert sessions.resolve(other_cookie) is None
    assert 'password.changed' in audit_actions(patient.user_id)
    assert templates_sent_to(patient.user_id)[-1] == 'password_changed'
    accounts.authenticate(email='change@example.org', password=NEW_PASSWORD)


def test_change_password_wrong_current_counts(make_patient):
    patient = make_patient(email='wrong@example.org')
    actor = sessions.resolve(open_session(patient.user_id))
    with pytest.raises(ValidationError, match='Current password is incorrect') as raised:
        account_lifecycle.change_password(actor=actor, current_password='not my password', new_password=NEW_PASSWORD)
    assert raised.value.field == 'current_password'
    with db.session_scope() as session:
        failures = session.scalar(select(SignInAttempt.failures).where(SignInAttempt.key_kind == 'account'))
    assert failures == 1
    assert 'password.change_failed' in audit_actions(patient.user_id)
    accounts.authenticate(email='wrong@example.org', password=PASSWORD)


def test_change_password_throttled_after_five(make_patient):
    patient = make_patient(email='guess@example.org')
    actor = sessions.resolve(open_session(patient.user_id))
    for _ in range(4):
        with pytest.raises(ValidationError, match='incorrect'):
            account_lifecycle.change_password(actor=actor, current_password='guess', new_password=NEW_PASSWORD)
    with pytest.raises(SignInThrottledError):
        account_lifecycle.change_password(actor=actor, current_password='guess', new_password=NEW_PASSWORD)
    with pytest.raises(SignInThrottledError):
        account_lifecycle.change_password(actor=actor, current_password=PASSWORD, new_password=NEW_PASSWORD)


def test_change_password_checks_new_one(make_patient):
    patient = make_patient()
    actor = sessions.resolve(open_session(patient.user_id))
    with pytest.raises(ValidationError, match='at least 12 characters'):
        account_lifecycle.change_password(actor=actor, current_password=PASSWORD, new_password='short')
    with pytest.raises(ValidationError, match='same as the current one'):
        account_lifecycle.change_password(actor=actor, current_password=PASSWORD, new_password=PASSWORD)


# --- deactivation ----------------------------------------------------------------------------------

def test_deactivating_patient_ends_sessions(admin, make_patient):
    patient = make_patient(email='leaving@example.org')
    cookie = open_session(patient.user_id)
    announced: list[frozenset[int]] = []
    remove = sessions.add_revocation_listener(announced.append)
    try:
        accounts.set_user_active(actor=admin, user_id=patient.user_id, active=False)
    finally:
        remove()
    assert sessions.resolve(cookie) is None
    assert len(announced) == 1
    with pytest.raises(ValidationError, match='deactivated'):
        accounts.authenticate(email='leaving@example.org', password=PASSWORD)
    assert 'user.deactivated' in audit_actions(patient.user_id)

    accounts.set_user_active(actor=admin, user_id=patient.user_id, active=True)
    accounts.authenticate(email='leaving@example.org', password=PASSWORD)


def test_deactivation_rules(admin, make_patient):
    patient = make_patient()
    with pytest.raises(ValidationError, match='your own account'):
        accounts.set_user_active(actor=admin, user_id=admin.user_id, active=False)
    other_admin = accounts.create_admin(full_name='Second Admin', email='admin2@example.org', password=PASSWORD)
    with pytest.raises(NotFoundError):
        accounts.set_user_active(actor=admin, user_id=other_admin.user_id, active=False)
    with pytest.raises(PermissionDeniedError):
        accounts.set_user_active(actor=patient, user_id=patient.user_id, active=False)


# --- secrets stay out of the outbox rows, the admin panel and the logs -----------------------------

def test_sent_link_secret_removed_from_stored_body(admin, make_patient):
    patient = make_patient(email='secret@example.org', verified=False)
    secret = queued_link(patient.user_id, '/verify-email')
    assert notifications.deliver_due() == 1

    with db.session_scope() as session:
        row = session.scalar(select(Notification).where(Notification.user_id == patient.user_id))
        assert secret not in row.body_text
        assert secret not in row.body_html
        assert '/verify-email?token=REMOVED' in row.body_text
    eml = notifications.outbox_files(actor=admin)[0]
    assert secret in eml.read_text().replace('=\n', '')
    shown = notifications.read_eml(actor=admin, name=eml.name)
    assert secret not in shown.replace('=\n', '')
    assert 'REMOVED' in shown
    # The link still works: only the stored copies lost the secret.
    assert account_lifecycle.verification_link_works(secret)


def test_access_log_hides_link_secrets():
    record = logging.LogRecord('uvicorn.access', logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ('127.0.0.1:5000', 'GET', '/reset-password?token=abc-DEF_123&x=1', '1.1', 200), None)
    SecretParameterFilter().filter(record)
    assert 'abc-DEF_123' not in record.getMessage()
    assert '/reset-password?token=REMOVED&x=1' in record.getMessage()
    assert redact_url_secrets('/auth/session?ticket=s3cret&next=/exams') == '/auth/session?ticket=REMOVED&next=/exams'
