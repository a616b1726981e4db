"""Two-step sign-in: enrollment, codes (window, replay), secrets encrypted at rest, throttle, admins."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
import pytest
from sqlalchemy import select, text

from secondopinion.config import reset_settings
from secondopinion.db import session_scope
from secondopinion.models import AuditEvent, SignInAttempt, User
from secondopinion.services import accounts, throttle, totp
from secondopinion.services.actors import Actor
from secondopinion.services.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from secondopinion.services.throttle import SignInThrottledError
from tests.conftest import PASSWORD
from tests.totp_codes import ADMIN_TOTP_SECRET, fresh_code

ADDRESS = '192.0.2.20'


def _enroll(actor: Actor) -> str:
    """Turn on two-step sign-in for the actor as the profile page does; return the secret."""
    enrollment = totp.begin_enrollment(actor=actor)
    totp.confirm_enrollment(actor=actor, code=pyotp.TOTP(enrollment.secret).now())
    return enrollment.secret


def _user(user_id: int) -> User:
    with session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        session.expunge(user)
        return user


def _actions(prefix: str) -> list[tuple[str, dict]]:
    with session_scope() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like(f'{prefix}%'))
                               .order_by(AuditEvent.id)).all()
        return [(row.action, row.detail or {}) for row in rows]


def _password_step(email: str, password: str = PASSWORD) -> totp.SecondFactorRequired:
    with pytest.raises(totp.SecondFactorRequired) as asked:
        accounts.authenticate(email=email, password=password, client_address=ADDRESS)
    return asked.value


@pytest.fixture
def alice(make_patient: Callable[..., Actor]) -> Actor:
    return make_patient('Alice Patient', email='alice@example.org')


def test_enrollment_gives_uri_and_typable_secret(alice, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_PRACTICE_NAME', 'Lakeside Radiology')
    reset_settings()
    enrollment = totp.begin_enrollment(actor=alice)
    assert enrollment.provisioning_uri.startswith('otpauth://totp/')
    parsed = pyotp.parse_uri(enrollment.provisioning_uri)
    assert parsed.issuer == 'Lakeside Radiology'
    assert parsed.name == 'alice@example.org'
    assert parsed.secret == enrollment.secret
    groups = enrollment.secret_groups.split(' ')
    assert ''.join(groups) == enrollment.secret
    assert all(len(group) == 4 for group in groups[:-1])
    assert enrollment.qr_svg.startswith('<svg')
    # Not on before a code confirms it: the password alone still signs in.
    assert not totp.get_status(actor=alice).enabled
    assert accounts.authenticate(email='alice@example.org', password=PASSWORD).user_id == alice.user_id


def test_confirm_with_valid_code_turns_it_on(alice):
    enrollment = totp.begin_enrollment(actor=alice)
    totp.confirm_enrollment(actor=alice, code=pyotp.TOTP(enrollment.secret).now())
    status = totp.get_status(actor=alice)
    assert status.enabled
    assert status.enabled_at is not None
    assert not status.required
    assert [action for action, _ in _actions('totp.')] == ['totp.enrollment_started', 'totp.enabled']
    _password_step('alice@example.org')


def test_confirm_with_wrong_or_malformed_code_refused(alice):
    enrollment = totp.begin_enrollment(actor=alice)
    wrong = f'{(int(pyotp.TOTP(enrollment.secret).now()) + 1) % 1_000_000:06d}'
    with pytest.raises(ValidationError, match='The code is incorrect or was already used') as error:
        totp.confirm_enrollment(actor=alice, code=wrong)
    assert error.value.field == 'code'
    with pytest.raises(ValidationError, match='The code must be the 6 digits'):
        totp.confirm_enrollment(actor=alice, code='12ab56')
    assert not totp.get_status(actor=alice).enabled
    # Spaces, as some apps show them, are fine.
    code = pyotp.TOTP(enrollment.secret).now()
    totp.confirm_enrollment(actor=alice, code=f'{code[:3]} {code[3:]}')
    assert totp.get_status(actor=alice).enabled


def test_confirm_without_setup_refused(alice):
    with pytest.raises(ConflictError, match='Start the set-up'):
        totp.confirm_enrollment(actor=alice, code='123456')


def test_secret_encrypted_at_rest(alice, monkeypatch):
    secret = _enroll(alice)
    with session_scope() as session:
        stored = session.execute(text('SELECT totp_secret FROM users WHERE id = :id'), {'id': alice.user_id}).scalar()
    assert stored
    assert secret not in stored
    assert secret.lower() not in stored.lower()
    assert totp.decrypt_secret(stored, user_id=alice.user_id) == secret
    # With another storage secret the stored value cannot be read, and the message says what to do.
    monkeypatch.setenv('SECONDOPINION_STORAGE_SECRET', 'another storage secret for this test')
    reset_settings()
    with pytest.raises(ValidationError, match='Ask an admin to reset'):
        totp.decrypt_secret(stored, user_id=alice.user_id)


def test_sign_in_waits_for_code(alice):
    secret = _enroll(alice)
    step = _password_step('alice@example.org')
    assert not step.enroll
    assert [action for action, _ in _actions('sign_in.')] == []
    actor = totp.finish_sign_in(step.pending_id, fresh_code(secret, _user(alice.user_id).totp_last_step))
    assert actor.user_id == alice.user_id
    assert _actions('sign_in.') == [('sign_in.succeeded', {'method': 'password+totp'})]
    # A finished sign-in cannot be finished again.
    with pytest.raises(ValidationError, match='took longer than 5 minutes'):
        totp.finish_sign_in(step.pending_id, fresh_code(secret, _user(alice.user_id).totp_last_step))


def test_wrong_password_never_asks_for_code(alice):
    _enroll(alice)
    with pytest.raises(ValidationError, match='Email or password is incorrect'):
        accounts.authenticate(email='alice@example.org', password='not the password', client_address=ADDRESS)


def test_replayed_code_refused(alice):
    secret = _enroll(alice)
    # The code that confirmed the enrollment is used up already.
    used = pyotp.TOTP(secret).at(_user(alice.user_id).totp_last_step * 30)
    step = _password_step('alice@example.org')
    with pytest.raises(ValidationError, match='already used'):
        totp.finish_sign_in(step.pending_id, used)
    code = fresh_code(secret, _user(alice.user_id).totp_last_step)
    totp.finish_sign_in(step.pending_id, code)
    again = _password_step('alice@example.org')
    with pytest.raises(ValidationError, match='already used'):
        totp.finish_sign_in(again.pending_id, code)
    failed = [detail for action, detail in _actions('sign_in.') if action == 'sign_in.failed']
    assert failed == [{'reason': 'wrong second factor'}] * 2


def test_window_accepts_neighbouring_steps_only(alice):
    secret = _enroll(alice)
    generator = pyotp.TOTP(secret)
    now = time.time() + 600  # steps after the one used by the enrollment
    current = generator.timecode(now)
    with session_scope() as session:
        user = session.get(User, alice.user_id)
        assert user is not None
        assert not totp.use_code(session, user, generator.generate_otp(current - 2), now=now)
        assert not totp.use_code(session, user, generator.generate_otp(current + 2), now=now)
        assert totp.use_code(session, user, generator.generate_otp(current - 1), now=now)
        assert totp.use_code(session, user, generator.generate_otp(current + 1), now=now)
        # Once a later step was accepted, an earlier code is refused, even within the window.
        assert not totp.use_code(session, user, generator.generate_otp(current), now=now)
        assert not totp.use_code(session, user, generator.generate_otp(current + 1), now=now)
    assert _user(alice.user_id).totp_last_step == current + 1


def test_wrong_codes_count_against_throttle(alice):
    secret = _enroll(alice)
    step = _password_step('alice@example.org')
    wrong = f'{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}'
    # The password attempt stays counted until the code is right: 1 + 3 wrong codes.
    for _ in range(3):
        with pytest.raises(ValidationError, match='The code is incorrect'):
            totp.finish_sign_in(step.pending_id, wrong)
    # The fifth counted attempt locks the account, and the waiting sign-in is dropped.
    with pytest.raises(SignInThrottledError, match='Try again in 1 minute'):
        totp.finish_sign_in(step.pending_id, wrong)
    with pytest.raises(ValidationError, match='took longer than 5 minutes'):
        totp.finish_sign_in(step.pending_id, wrong)
    with pytest.raises(SignInThrottledError):
        accounts.authenticate(email='alice@example.org', password=PASSWORD, client_address=ADDRESS)
    actions = _actions('sign_in.')
    assert actions[:4] == [('sign_in.failed', {'reason': 'wrong second factor'})] * 4
    assert actions[4][0] == 'sign_in.throttled'


def test_right_code_clears_the_counts(alice):
    secret = _enroll(alice)
    step = _password_step('alice@example.org')
    wrong = f'{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}'
    with pytest.raises(ValidationError):
        totp.finish_sign_in(step.pending_id, wrong)
    totp.finish_sign_in(step.pending_id, fresh_code(secret, _user(alice.user_id).totp_last_step))
    with session_scope() as session:
        account = session.scalar(select(SignInAttempt).where(
            SignInAttempt.key_kind == throttle.ACCOUNT,
            SignInAttempt.key_hash == throttle.hash_key('alice@example.org')))
        address = session.scalar(select(SignInAttempt).where(
            SignInAttempt.key_kind == throttle.ADDRESS, SignInAttempt.key_hash == throttle.hash_key(ADDRESS)))
    assert account is None
    # The password and the right code are taken back; the wrong code stays counted for the address.
    assert address is not None and address.failures == 1


def test_deactivated_between_password_and_code(make_doctor, admin):
    doctor = make_doctor(email='bob@example.org')
    secret = _enroll(doctor)
    step = _password_step('bob@example.org')
    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    with pytest.raises(ValidationError, match='deactivated'):
        totp.finish_sign_in(step.pending_id, fresh_code(secret, _user(doctor.user_id).totp_last_step))
    assert 'sign_in.succeeded' not in [action for action, _ in _actions('sign_in.')]


def test_admin_without_totp_must_enroll_at_sign_in():
    info = accounts.create_admin(full_name='Root Admin', email='root@example.org', password=PASSWORD)
    step = _password_step('root@example.org')
    assert step.enroll
    # No code can be right before the enrollment made a secret.
    with pytest.raises(ValidationError, match='The code is incorrect'):
        totp.finish_sign_in(step.pending_id, '123456')
    enrollment = totp.begin_sign_in_enrollment(step.pending_id)
    actor = totp.finish_sign_in(step.pending_id, pyotp.TOTP(enrollment.secret).now())
    assert actor.is_admin
    assert _user(info.user_id).totp_enabled_at is not None
    assert ('totp.enabled', {'during': 'sign_in'}) in _actions('totp.')
    assert [action for action, _ in _actions('sign_in.')] == ['sign_in.failed', 'sign_in.succeeded']


def test_admin_cannot_disable(admin):
    with pytest.raises(PermissionDeniedError, match='Admins must keep two-step sign-in'):
        totp.disable(actor=admin, password=PASSWORD, code=fresh_code(ADMIN_TOTP_SECRET, None))
    assert totp.get_status(actor=admin).enabled
    assert totp.get_status(actor=admin).required


def test_disable_needs_password_and_code(alice):
    secret = _enroll(alice)
    actor = Actor(**{**alice.__dict__, 'client_address': ADDRESS})
    with pytest.raises(ValidationError, match='The password is incorrect') as error:
        totp.disable(actor=actor, password='not the password', code=fresh_code(secret, None))
    assert error.value.field == 'password'
    with pytest.raises(ValidationError, match='The code is incorrect'):
        totp.disable(actor=actor, password=PASSWORD, code='000000' if pyotp.TOTP(secret).now() != '000000'
                     else '111111')
    assert totp.get_status(actor=alice).enabled
    totp.disable(actor=actor, password=PASSWORD, code=fresh_code(secret, _user(alice.user_id).totp_last_step))
    assert not totp.get_status(actor=alice).enabled
    assert _user(alice.user_id).totp_secret is None
    actions = _actions('totp.')
    assert [action for action, _ in actions][-3:] == ['totp.disable_refused', 'totp.disable_refused', 'totp.disabled']
    assert accounts.authenticate(email='alice@example.org', password=PASSWORD).user_id == alice.user_id


def test_admin_resets_lost_phone(admin, alice):
    _enroll(alice)
    totp.reset(actor=admin, email='Alice@Example.org')
    assert not totp.get_status(actor=alice).enabled
    assert _actions('totp.reset') == [('totp.reset', {})]
    with session_scope() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == 'totp.reset')).one()
    assert (event.actor_user_id, event.object_id) == (admin.user_id, str(alice.user_id))
    assert accounts.authenticate(email='alice@example.org', password=PASSWORD).user_id == alice.user_id


def test_reset_refusals(admin, alice, make_doctor):
    doctor = make_doctor(email='bob@example.org')
    _enroll(alice)
    with pytest.raises(PermissionDeniedError):
        totp.reset(actor=doctor, email='alice@example.org')
    with pytest.raises(ValidationError, match='your own'):
        totp.reset(actor=admin, email='admin@example.org')
    with pytest.raises(NotFoundError, match='nobody@example.org'):
        totp.reset(actor=admin, email='nobody@example.org')
    with pytest.raises(ConflictError, match='no two-step sign-in'):
        totp.reset(actor=admin, email='bob@example.org')
    assert totp.get_status(actor=alice).enabled


def test_reset_admin_enrolls_again(admin):
    other = accounts.create_admin(full_name='Second Admin', email='second@example.org', password=PASSWORD,
                                  totp_secret=pyotp.random_base32())
    totp.reset(actor=admin, email='second@example.org')
    assert _user(other.user_id).totp_secret is None
    assert _password_step('second@example.org').enroll
