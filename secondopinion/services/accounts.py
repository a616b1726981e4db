"""Accounts: patient registration, doctor and admin creation, sign-in and deactivation.

Email verification, password reset, doctor invitations and password change are in account_lifecycle.py.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

from email_validator import EmailNotValidError, validate_email
from passlib.context import CryptContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import session_scope
from ..i18n import validate_language
from ..models import Doctor, Patient, Role, TokenPurpose, User
from ..models.base import utcnow
from . import account_links, audit, sessions, throttle, totp
from .actors import SYSTEM, Actor, load_actor, require_role
from ..i18n import N_
from .errors import ConflictError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

password_context = CryptContext(schemes=['argon2'], deprecated='auto')

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
PHONE_PATTERN = re.compile(r'^\+[1-9]\d{6,14}$')


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise ValidationError(N_('Email address "{email}" is invalid: {reason}'), field='email', email=email.strip(),
                              reason=error) from None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(N_('Password must have at least {count} characters.'), field='password',
                              count=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(N_('Password must have at most {count} characters.'), field='password',
                              count=MAX_PASSWORD_LENGTH)


def normalize_phone(phone: str) -> str | None:
    """Return the phone number in E.164 form (+ and digits), None when empty."""
    cleaned = re.sub(r'[\s().-]', '', phone or '')
    if not cleaned:
        return None
    if cleaned.startswith('00'):
        cleaned = '+' + cleaned[2:]
    if not PHONE_PATTERN.match(cleaned):
        raise ValidationError(
            N_('Phone number "{phone}" is invalid: use the international form with country code, e.g. '
               '+41 79 123 45 67.'), field='phone', phone=phone)
    return cleaned


def _require_name(name: str) -> str:
    name = (name or '').strip()
    if not name:
        raise ValidationError(N_('Full name is missing.'), field='name')
    if len(name) > 200:
        raise ValidationError(N_('Full name must have at most 200 characters.'), field='name')
    return name


# Public name of the full-name check, for sign-up paths outside this module.
require_name = _require_name


def parse_date_of_birth(value: str | None) -> date | None:
    """Parse a date of birth typed as YYYY-MM-DD; return None when it is empty."""
    if not value or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(N_('Date of birth "{value}" is invalid: use the form YYYY-MM-DD.'),
                              field='date_of_birth', value=value) from None


def check_date_of_birth(date_of_birth: date | None) -> None:
    """Raise ValidationError unless the date of birth is given, not in the future and not before 1900."""
    if date_of_birth is None:
        raise ValidationError(N_('Date of birth is missing.'), field='date_of_birth')
    if date_of_birth > date.today() or date_of_birth.year < 1900:
        raise ValidationError(N_('Date of birth {date} is not a valid past date.'),
                              field='date_of_birth', date=date_of_birth.isoformat())


def _ensure_email_free(session: Session, email: str) -> None:
    if session.scalar(select(func.count()).select_from(User).where(User.email == email)):
        raise ConflictError(N_('An account with the email address {email} already exists. Sign in instead.'),
                            email=email)


@dataclass(frozen=True)
class AccountInfo:
    user_id: int
    email: str
    role: str
    full_name: str


def register_patient(*, full_name: str, email: str, password: str, date_of_birth: date | None,
                     phone: str = '', language: str = 'en') -> AccountInfo:
    """Create a patient account after checking every field; `language` is the code of the account's language."""
    language = validate_language(language)
    name = _require_name(full_name)
    email = normalize_email(email)
    phone_e164 = normalize_phone(phone)
    check_password(password)
    check_date_of_birth(date_of_birth)
    assert date_of_birth is not None
    with session_scope() as session:
        _ensure_email_free(session, email)
        user = User(email=email, password_hash=password_context.hash(password), role=Role.PATIENT,
                    full_name=name, phone=phone_e164, language=language)
        session.add(user)
        session.flush()
        session.add(Patient(user_id=user.id, date_of_birth=date_of_birth))
        from .notifications import enqueue_email
        secret = account_links.issue(session, user.id, TokenPurpose.VERIFY_EMAIL)
        enqueue_email(session, user_id=user.id, examination_id=None, recipient=email, template='welcome',
                      context={'patient_name': name,
                               'verify_link': account_links.path_for(TokenPurpose.VERIFY_EMAIL, secret)})
        audit.record(session, SYSTEM, 'patient.registered', 'user', user.id)
        logger.info('patient registered: user %s', user.id)
        return AccountInfo(user.id, user.email, user.role, user.full_name)


def create_doctor(*, actor: Actor, full_name: str, email: str, license_number: str, specialty: str,
                  password: str | None = None) -> AccountInfo:
    """Create a doctor account and email the doctor an invitation to choose a password; only admins may.

    Until the doctor accepts the invitation the account has no password, so nobody can sign in to it.
    With `password` (for the command line and tests) the account is ready at once and no invitation is sent.
    """
    require_role(actor, Role.ADMIN)
    name = _require_name(full_name)
    email = normalize_email(email)
    if password is not None:
        check_password(password)
    license_number = (license_number or '').strip()
    specialty = (specialty or '').strip()
    if not license_number:
        raise ValidationError(N_('License number is missing.'), field='license_number')
    if not specialty:
        raise ValidationError(N_('Specialty is missing.'), field='specialty')
    with session_scope() as session:
        _ensure_email_free(session, email)
        if session.scalar(select(func.count()).select_from(Doctor).where(Doctor.license_number == license_number)):
            raise ConflictError(N_('A doctor with license number {license} already exists.'), license=license_number)
        now = utcnow()
        user = User(email=email, role=Role.DOCTOR, full_name=name,
                    password_hash=password_context.hash(password) if password is not None else None,
                    password_changed_at=now if password is not None else None,
                    email_verified_at=now if password is not None else None)
        session.add(user)
        session.flush()
        doctor = Doctor(user_id=user.id, license_number=license_number, specialty=specialty)
        session.add(doctor)
        session.flush()
        if password is None:
            send_invite(session, user)
        audit.record(session, actor, 'doctor.created', 'doctor', doctor.id, invited=password is None)
        logger.info('doctor %s created by user %s', doctor.id, actor.user_id)
        return AccountInfo(user.id, user.email, user.role, user.full_name)


def send_invite(session: Session, user: User) -> None:
    """Queue the invitation email with a new link, which ends the doctor's earlier invitation links."""
    from .notifications import enqueue_email

    secret = account_links.issue(session, user.id, TokenPurpose.INVITE)
    enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email, template='doctor_invite',
                  context={'name': user.full_name, 'link': account_links.path_for(TokenPurpose.INVITE, secret)})


def create_admin(*, full_name: str, email: str, password: str, totp_secret: str | None = None) -> AccountInfo:
    """Create an admin account; called from the command line, which is trusted.

    Without `totp_secret`, the admin sets up two-step sign-in at the first sign-in. With it (for
    scripted setups), two-step sign-in is on at once with that base32 secret.
    """
    name = _require_name(full_name)
    email = normalize_email(email)
    check_password(password)
    with session_scope() as session:
        _ensure_email_free(session, email)
        user = User(email=email, password_hash=password_context.hash(password), role=Role.ADMIN, full_name=name)
        session.add(user)
        session.flush()
        audit.record(session, SYSTEM, 'admin.created', 'user', user.id)
        if totp_secret is not None:
            totp.set_secret_for_new_admin(session, user, totp_secret)
            audit.record(session, SYSTEM, 'totp.enabled', 'user', user.id, during='create_admin')
        logger.info('admin created: user %s', user.id)
        return AccountInfo(user.id, user.email, user.role, user.full_name)


def authenticate(*, email: str, password: str, client_address: str | None = None) -> Actor:
    """Return the actor for valid credentials of an active account, else raise one generic error.

    When the account needs a second factor (turned on by its owner, or an admin), raise
    `totp.SecondFactorRequired` instead: no session may start before `totp.finish_sign_in`.
    Every attempt is counted by the sign-in throttle and written to the audit log. While the account
    or the client address is locked, SignInThrottledError is raised before the password is checked.
    """
    failure = ValidationError(N_('Email or password is incorrect.'), field='password')
    try:
        email = normalize_email(email)
        email_is_valid = True
    except ValidationError:
        # No account has an invalid email, but the attempt still counts against what was typed.
        email = email.strip().lower()
        email_is_valid = False
    email_hash = throttle.hash_key(email)

    # 1. Count the attempt, committed before the password is checked so concurrent attempts see it.
    try:
        with session_scope() as session:
            reservation = throttle.reserve_attempt(session, account=email, address=client_address)
    except throttle.SignInThrottledError:
        with session_scope() as session:
            user_id = _find_user_id(session, email) if email_is_valid else None
            audit.record_sign_in(session, 'sign_in.throttled', user_id=user_id, email_hash=email_hash,
                                 client_address=client_address)
        raise

    # 2. Check the password outside any transaction, because argon2 takes a while.
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == email)) if email_is_valid else None
        user_id = user.id if user else None
        password_hash = user.password_hash if user else None
    if password_hash:
        valid, new_hash = password_context.verify_and_update(password, password_hash)
    else:
        password_context.dummy_verify()
        valid, new_hash = False, None
    if not valid:
        with session_scope() as session:
            audit.record_sign_in(session, 'sign_in.failed', user_id=user_id, email_hash=email_hash,
                                 client_address=client_address,
                                 reason='wrong password' if user_id else 'unknown account')
        logger.info('sign-in failed for %s', f'user {user_id}' if user_id else f'email hash {email_hash[:12]}...')
        if reservation.locked_until is not None:
            raise throttle.SignInThrottledError(reservation.locked_until - utcnow(), password_was_checked=True)
        raise failure

    # 3. The password is right. A deactivated account still counts as a failed sign-in.
    assert user_id is not None
    second_factor: totp.SecondFactorRequired | None = None
    locked_before_code = False
    with session_scope() as session:
        actor = load_actor(session, user_id)
        if actor is None:
            audit.record_sign_in(session, 'sign_in.failed', user_id=user_id, email_hash=email_hash,
                                 client_address=client_address, reason='account deactivated')
        else:
            user = session.get(User, user_id)
            assert user is not None
            if new_hash:
                user.password_hash = new_hash
            if totp.needs_second_factor(user):
                # 4. No session yet: the attempt stays counted until the code is right (services/totp.py).
                if reservation.locked_until is not None:
                    locked_before_code = True
                    audit.record_sign_in(session, 'sign_in.throttled', user_id=user_id, email_hash=email_hash,
                                         client_address=client_address)
                else:
                    second_factor = totp.hold_sign_in(user_id=user_id, account=email, email_hash=email_hash,
                                                      client_address=client_address, reservation=reservation,
                                                      enroll=user.totp_enabled_at is None)
            else:
                throttle.take_back(session, reservation)
                user.last_login_at = utcnow()
                audit.record_sign_in(session, 'sign_in.succeeded', user_id=user_id, email_hash=email_hash,
                                     client_address=client_address)
    if actor is None:
        logger.info('sign-in rejected for deactivated user %s', user_id)
        raise ValidationError(N_('This account is deactivated. Contact the practice.'), field='email')
    if second_factor is not None:
        raise second_factor
    if locked_before_code:
        # This attempt reached the limit, so the code could not be checked before the lock ends.
        assert reservation.locked_until is not None
        raise throttle.SignInThrottledError(reservation.locked_until - utcnow())
    return actor


def _find_user_id(session: Session, email: str) -> int | None:
    return session.scalar(select(User.id).where(User.email == email))


def get_actor(user_id: int | None) -> Actor | None:
    """Return the actor for a session's user id, or None when it is missing or deactivated."""
    if not user_id:
        return None
    with session_scope() as session:
        return load_actor(session, user_id)


def set_doctor_active(*, actor: Actor, doctor_id: int, active: bool) -> None:
    """Deactivate or reactivate a doctor; a deactivated doctor can neither sign in nor accept cases."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        doctor = session.get(Doctor, doctor_id)
        if doctor is None:
            raise NotFoundError(N_('Doctor'))
        user_id = doctor.user_id
    set_user_active(actor=actor, user_id=user_id, active=active)


def set_user_active(*, actor: Actor, user_id: int, active: bool) -> None:
    """Deactivate or reactivate a patient's or a doctor's account (admins only, never their own).

    Deactivation ends every session of the account at once, so its open pages leave within a second.
    """
    require_role(actor, Role.ADMIN)
    if user_id == actor.user_id:
        raise ValidationError(N_('You cannot deactivate or reactivate your own account. Ask another admin.'))
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is None or user.role not in (Role.PATIENT, Role.DOCTOR) or user.deleted_at is not None:
            raise NotFoundError(N_('Account'))
        user.is_active = active
        ended: list[int] = []
        if user.role == Role.DOCTOR:
            doctor = session.scalar(select(Doctor).where(Doctor.user_id == user_id))
            assert doctor is not None
            doctor.is_active = active
            audit.record(session, actor, 'doctor.activated' if active else 'doctor.deactivated', 'doctor', doctor.id,
                         user_id=user_id)
        else:
            audit.record(session, actor, 'user.activated' if active else 'user.deactivated', 'user', user_id)
        if not active:
            ended = sessions.end_for_user(session, user_id, reason=sessions.DEACTIVATED)
    sessions.announce_ended(ended)
    logger.info('user %s set active=%s by user %s, %s session(s) ended', user_id, active, actor.user_id, len(ended))
