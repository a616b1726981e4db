"""Two-step sign-in with time-based one-time codes (TOTP, RFC 6238, as authenticator apps make them).

Optional for patients and doctors, required for admins: an admin without a second factor is taken
through enrollment at sign-in before any session starts, and cannot turn it off. When a phone is
lost, an admin can reset another user's second factor. That user then signs in with the password
alone, except an admin, who is taken through enrollment again at the next sign-in.

Secrets at rest. `users.totp_secret` holds the secret encrypted with Fernet (AES-128-CBC with an
HMAC-SHA256 tag), under a key derived from the storage secret (`SECONDOPINION_STORAGE_SECRET`) with
HKDF-SHA256 and a fixed info string. This protects against a copy of the database alone, such as a
backup, a dump or a replica that leaks: without the storage secret, nobody can make codes from it.
It does not protect against someone who has both the database and the app's environment (the
server itself), nor against a running app being taken over, nor does it stop someone who can write
to the database from clearing `totp_enabled_at`. Changing the storage secret makes every stored
secret unreadable: those users cannot sign in until an admin resets their second factor.

Codes. A code is accepted for the current 30-second step and the steps just before and after it
(clock drift of the phone). The accepted step is stored in `users.totp_last_step` by one
compare-and-set UPDATE, so a code, or an older one, is never accepted twice, even by two requests
at once.

Sign-in. When the password is right and the account needs a second factor, `accounts.authenticate`
raises `SecondFactorRequired` instead of returning an actor. The "password checked" state stays on
the server in a map keyed by a random id that the page keeps in its own (server-side) state, for at
most 5 minutes. The password attempt stays counted by the sign-in throttle until the code is right,
and every code attempt is counted too, so someone who knows the password gets no more guesses at
the code than at a password. The map lives in this process: with several app instances a page's
websocket must stay on one instance, which uploads already require (session affinity).
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import Role, User
from ..models.base import utcnow
from . import audit, throttle
from .actors import Actor, load_actor, require_role
from ..i18n import N_
from .errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError

logger = logging.getLogger(__name__)

HKDF_INFO = b'secondopinion totp-secret encryption v1'
# Number of 30-second steps before and after the current one whose codes are accepted too.
VALID_WINDOW = 1
PENDING_LIFETIME_SECONDS = 300
CODE_PATTERN = re.compile(r'^\d{6}$')
METHOD = 'password+totp'

WRONG_CODE = N_('The code is incorrect or was already used. Enter the 6-digit code that your authenticator '
                'app shows now.')
EXPIRED = N_('The sign-in took longer than 5 minutes. Enter your email address and password again.')


class SecondFactorRequired(Exception):  # noqa: N818 (a step of the sign-in, not an error)
    """Raised when the password was right and the sign-in continues with a code (after an enrollment when `enroll`)."""

    def __init__(self, pending_id: str, *, enroll: bool) -> None:
        super().__init__('A 6-digit code from the authenticator app is needed to finish signing in.')
        self.pending_id = pending_id
        self.enroll = enroll


@dataclass(frozen=True)
class Enrollment:
    """Provisioning data for an authenticator app: the secret, its otpauth:// URI and that URI as a QR code."""

    secret: str
    provisioning_uri: str
    qr_svg: str

    @property
    def secret_groups(self) -> str:
        """The secret in groups of four letters, easier to type."""
        return ' '.join(self.secret[index:index + 4] for index in range(0, len(self.secret), 4))


@dataclass(frozen=True)
class TotpStatus:
    enabled: bool
    enabled_at: datetime | None
    required: bool
    setup_started: bool


# ---------------------------------------------------------------------------------------------
# Encryption of the stored secret

def _fernet() -> Fernet:
    storage_secret = get_settings().storage_secret.get_secret_value().encode('utf-8')
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(storage_secret)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode('ascii')).decode('ascii')


def decrypt_secret(stored: str, *, user_id: int) -> str:
    try:
        return _fernet().decrypt(stored.encode('ascii')).decode('ascii')
    except InvalidToken:
        logger.error('TOTP secret of user %s cannot be decrypted: the storage secret changed', user_id)
        raise ValidationError(N_('Your two-step sign-in cannot be checked, because the server key changed. '
                                 'Ask an admin to reset your two-step sign-in.'), field='code') from None


# ---------------------------------------------------------------------------------------------
# Codes

def normalize_code(code: str) -> str:
    """Return the 6 digits of a typed code (spaces removed), or raise a message for the code field."""
    cleaned = re.sub(r'\s', '', code or '')
    if not CODE_PATTERN.match(cleaned):
        raise ValidationError(N_('The code must be the 6 digits that your authenticator app shows, for example '
                                 '123 456.'), field='code')
    return cleaned


def _matching_step(secret: str, code: str, last_step: int | None, now: float) -> int | None:
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def use_code(session: Session, user: User, code: str, *, now: float | None = None) -> bool:
    """Check a code against the user's stored secret and mark its step used; False when wrong or used.

    The step is stored by a compare-and-set UPDATE in the caller's transaction, so of two requests
    with the same code only one gets True.
    """
    if not user.totp_secret:
        return False
    secret = decrypt_secret(user.totp_secret, user_id=user.id)
    step = _matching_step(secret, code, user.totp_last_step, time.time() if now is None else now)
    if step is None:
        return False
    result: CursorResult = session.execute(  # type: ignore[assignment] # UPDATE returns a CursorResult
        update(User).where(User.id == user.id,
                           or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        logger.info('TOTP code of user %s rejected: a concurrent request used its step first', user.id)
        return False
    user.totp_last_step = step
    return True


def needs_second_factor(user: User) -> bool:
    """Return whether signing in to this account takes a code: when its owner turned it on, and always for admins."""
    return user.totp_enabled_at is not None or user.role == Role.ADMIN


def _new_enrollment(user: User) -> Enrollment:
    """Store a new, not yet enabled secret for the user (in the caller's transaction) and return it."""
    secret = pyotp.random_base32()
    user.totp_secret = encrypt_secret(secret)
    user.totp_enabled_at = None
    user.totp_last_step = None
    return _enrollment(secret, user.email)


def _enrollment(secret: str, email: str) -> Enrollment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=get_settings().practice_name)
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return Enrollment(secret=secret, provisioning_uri=uri, qr_svg=image.to_string(encoding='unicode'))


def _actor_for(user: User, client_address: str | None) -> Actor:
    return Actor(user_id=user.id, role=user.role, name=user.full_name, client_address=client_address)


# ---------------------------------------------------------------------------------------------
# The signed-in user's own second factor (profile page)

def _own_user(session: Session, actor: Actor) -> User:
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFoundError(N_('Account'))
    return user


def get_status(*, actor: Actor) -> TotpStatus:
    with session_scope() as session:
        user = _own_user(session, actor)
        return TotpStatus(enabled=user.totp_enabled_at is not None, enabled_at=user.totp_enabled_at,
                          required=user.role == Role.ADMIN,
                          setup_started=user.totp_secret is not None and user.totp_enabled_at is None)


def begin_enrollment(*, actor: Actor) -> Enrollment:
    """Store a new secret for the user, not yet enabled. `confirm_enrollment` enables it with a code."""
    with session_scope() as session:
        user = _own_user(session, actor)
        if user.totp_enabled_at is not None:
            raise ConflictError(N_('Two-step sign-in is already on for your account. Turn it off first to move it '
                                   'to another app.'))
        enrollment = _new_enrollment(user)
        audit.record(session, actor, 'totp.enrollment_started', 'user', user.id)
    logger.info('user %s started setting up two-step sign-in', actor.user_id)
    return enrollment


def confirm_enrollment(*, actor: Actor, code: str, now: float | None = None) -> None:
    """Enable the secret from `begin_enrollment` once the user typed a valid code from the app."""
    code = normalize_code(code)
    with session_scope() as session:
        user = _own_user(session, actor)
        if user.totp_enabled_at is not None:
            raise ConflictError(N_('Two-step sign-in is already on for your account.'))
        if user.totp_secret is None:
            raise ConflictError(N_('Start the set-up of two-step sign-in first.'))
        if not use_code(session, user, code, now=now):
            logger.info('user %s typed a wrong code while setting up two-step sign-in', actor.user_id)
            raise ValidationError(WRONG_CODE, field='code')
        user.totp_enabled_at = utcnow()
        audit.record(session, actor, 'totp.enabled', 'user', user.id)
    logger.info('user %s turned on two-step sign-in', actor.user_id)


def disable(*, actor: Actor, password: str, code: str) -> None:
    """Turn off the user's own second factor, which takes the current password and a valid code. Not for admins.

    Wrong passwords and codes count against the sign-in throttle, as at sign-in.
    """
    from .accounts import password_context

    if actor.role == Role.ADMIN:
        raise PermissionDeniedError(N_('Admins must keep two-step sign-in. If your phone is lost, another admin '
                                       'can reset it.'))
    with session_scope() as session:
        user = _own_user(session, actor)
        if user.totp_enabled_at is None:
            raise ConflictError(N_('Two-step sign-in is already off for your account.'))
        email, password_hash = user.email, user.password_hash
    code = normalize_code(code)
    with session_scope() as session:
        reservation = throttle.reserve_attempt(session, account=email, address=actor.client_address)
    valid_password = bool(password_hash) and password_context.verify(password, password_hash)
    with session_scope() as session:
        user = _own_user(session, actor)
        reason = None
        if not valid_password:
            reason = 'wrong password'
        elif not use_code(session, user, code):
            reason = 'wrong second factor'
        if reason is None:
            throttle.take_back(session, reservation)
            user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
            audit.record(session, actor, 'totp.disabled', 'user', user.id)
    if reason is not None:
        audit.record_now(actor, 'totp.disable_refused', 'user', actor.user_id, reason=reason)
        logger.info('user %s could not turn off two-step sign-in: %s', actor.user_id, reason)
        if reservation.locked_until is not None:
            raise throttle.SignInThrottledError(reservation.locked_until - utcnow())
        if reason == 'wrong password':
            raise ValidationError(N_('The password is incorrect. Enter your current password.'), field='password')
        raise ValidationError(WRONG_CODE, field='code')
    logger.info('user %s turned off two-step sign-in', actor.user_id)


def reset(*, actor: Actor, email: str) -> None:
    """Remove another user's second factor after a lost phone (admins only). An admin re-enrolls at the next sign-in."""
    from .accounts import normalize_email

    require_role(actor, Role.ADMIN)
    email = normalize_email(email)
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            raise NotFoundError(f'Account {email}')
        if user.id == actor.user_id:
            raise ValidationError(N_('You cannot reset your own two-step sign-in. Ask another admin.'), field='email')
        if user.totp_secret is None and user.totp_enabled_at is None:
            raise ConflictError(N_('{email} has no two-step sign-in to reset.'), email=email)
        user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
        audit.record(session, actor, 'totp.reset', 'user', user.id)
        user_id = user.id
    logger.info('two-step sign-in of user %s reset by admin %s', user_id, actor.user_id)


def set_secret_for_new_admin(session: Session, user: User, secret: str) -> None:
    """Enable a secret chosen by the operator for an admin created on the command line (scripted setups)."""
    cleaned = re.sub(r'\s', '', secret or '').upper()
    try:
        if len(cleaned) < 26:
            raise ValueError
        base64.b32decode(cleaned + '=' * (-len(cleaned) % 8))
    except ValueError:
        raise ValidationError(N_('The TOTP secret must be base32 (letters A-Z and digits 2-7), at least 26 '
                                 'characters long.'), field='totp_secret') from None
    user.totp_secret = encrypt_secret(cleaned)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = None


# ---------------------------------------------------------------------------------------------
# Sign-in: the step after the password

@dataclass
class _Pending:
    user_id: int
    account: str
    email_hash: str
    client_address: str | None
    reservation: throttle.Reservation
    enroll: bool
    expires_at: float = field(default_factory=lambda: time.monotonic() + PENDING_LIFETIME_SECONDS)


_pending: dict[str, _Pending] = {}
_pending_lock = threading.Lock()


def hold_sign_in(*, user_id: int, account: str, email_hash: str, client_address: str | None,
                 reservation: throttle.Reservation, enroll: bool) -> SecondFactorRequired:
    """Store that the password of this user was right, and return the exception that requests the code."""
    pending_id = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _pending_lock:
        for key in [key for key, pending in _pending.items() if pending.expires_at <= now]:
            del _pending[key]
        _pending[pending_id] = _Pending(user_id=user_id, account=account, email_hash=email_hash,
                                        client_address=client_address, reservation=reservation, enroll=enroll)
    logger.info('sign-in of user %s waits for the second factor%s', user_id, ' (enrollment)' if enroll else '')
    return SecondFactorRequired(pending_id, enroll=enroll)


def _get_pending(pending_id: str) -> _Pending:
    with _pending_lock:
        pending = _pending.get(pending_id)
        if pending is not None and pending.expires_at <= time.monotonic():
            del _pending[pending_id]
            pending = None
    if pending is None:
        raise ValidationError(EXPIRED, field='email')
    return pending


def cancel_sign_in(pending_id: str) -> None:
    """Forget a waiting sign-in (the user went back to the password step)."""
    with _pending_lock:
        _pending.pop(pending_id, None)


def begin_sign_in_enrollment(pending_id: str) -> Enrollment:
    """For an admin without a second factor: store a new secret during sign-in and return what to scan."""
    pending = _get_pending(pending_id)
    if not pending.enroll:
        raise ConflictError(N_('Two-step sign-in is already set up for this account.'))
    with session_scope() as session:
        user = session.get(User, pending.user_id)
        if user is None or user.totp_enabled_at is not None:
            raise ConflictError(N_('Two-step sign-in is already set up for this account. Sign in again.'))
        enrollment = _new_enrollment(user)
        audit.record(session, _actor_for(user, pending.client_address), 'totp.enrollment_started', 'user', user.id,
                     during='sign_in')
    logger.info('user %s started setting up two-step sign-in while signing in', pending.user_id)
    return enrollment


def finish_sign_in(pending_id: str, code: str) -> Actor:
    """Check the code of a waiting sign-in and return the actor for `layout.sign_in(method='password+totp')`.

    Every code attempt is counted by the sign-in throttle before it is checked. A wrong code writes
    `sign_in.failed` with the reason 'wrong second factor'. The right one writes `sign_in.succeeded`
    (and `totp.enabled` for an enrollment) and clears the counts of this sign-in.
    """
    pending = _get_pending(pending_id)
    code = normalize_code(code)
    try:
        with session_scope() as session:
            reservation = throttle.reserve_attempt(session, account=pending.account, address=pending.client_address)
    except throttle.SignInThrottledError:
        cancel_sign_in(pending_id)
        with session_scope() as session:
            audit.record_sign_in(session, 'sign_in.throttled', user_id=pending.user_id, email_hash=pending.email_hash,
                                 client_address=pending.client_address)
        raise

    actor = None
    reason = None
    with session_scope() as session:
        user = session.get(User, pending.user_id)
        if user is None or not use_code(session, user, code):
            reason = 'wrong second factor'
        else:
            actor = load_actor(session, user.id)
            if actor is None:
                reason = 'account deactivated'
            else:
                if pending.enroll and user.totp_enabled_at is None:
                    user.totp_enabled_at = utcnow()
                    audit.record(session, _actor_for(user, pending.client_address), 'totp.enabled', 'user', user.id,
                                 during='sign_in')
                throttle.take_back(session, pending.reservation)
                throttle.take_back(session, reservation)
                user.last_login_at = utcnow()
                audit.record_sign_in(session, 'sign_in.succeeded', user_id=user.id, email_hash=pending.email_hash,
                                     client_address=pending.client_address, method=METHOD)
    if reason is not None:
        with session_scope() as session:
            audit.record_sign_in(session, 'sign_in.failed', user_id=pending.user_id, email_hash=pending.email_hash,
                                 client_address=pending.client_address, reason=reason)
        logger.info('sign-in of user %s failed at the second factor: %s', pending.user_id, reason)
        if reason == 'account deactivated':
            cancel_sign_in(pending_id)
            raise ValidationError(N_('This account is deactivated. Contact the practice.'), field='email')
        if reservation.locked_until is not None:
            cancel_sign_in(pending_id)
            raise throttle.SignInThrottledError(reservation.locked_until - utcnow())
        raise ValidationError(WRONG_CODE, field='code')
    cancel_sign_in(pending_id)
    assert actor is not None
    logger.info('sign-in of user %s passed the second factor', actor.user_id)
    return actor
