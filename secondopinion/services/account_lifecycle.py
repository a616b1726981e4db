"""The account's life after creation: email verification, password reset, doctor invitations, password change.

Each flow works through a single-use link from account_links.py. Pages that a link opens change
nothing when they load, because mail scanners open links too: the change happens when the person
presses the button on the page. That holds for email verification as well, so a scanner in the
mailbox of someone who never registered cannot confirm an address for a stranger's account.

Rate limits, so that the app cannot be used to flood a mailbox:

- the verification email is sent again at most once a minute (RESEND_INTERVAL);
- a reset link goes to one account at most RESET_MAX_PER_ACCOUNT times per RESET_ACCOUNT_WINDOW,
  and further requests get the same message without an email;
- one client address may ask for reset links RESET_MAX_PER_ADDRESS times per RESET_ADDRESS_WINDOW,
  counted from the audit log; after that it gets an error that says nothing about the account.

A new password (by reset link or on the profile page) ends sessions, unused reset links and the
account's sign-in throttle count, and the owner gets an email saying that the password changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..db import session_scope
from ..models import AuditEvent, Doctor, Role, SignInAttempt, TokenPurpose, User
from ..models.base import utcnow
from . import account_links, audit, sessions, throttle
from .accounts import check_password, normalize_email, password_context, send_invite
from .actors import SYSTEM, Actor, load_actor, require_role
from ..i18n import N_
from .errors import ConflictError, NotFoundError, ValidationError
from .notifications import enqueue_email

logger = logging.getLogger(__name__)

RESEND_INTERVAL = timedelta(minutes=1)
RESET_MAX_PER_ACCOUNT = 3
RESET_ACCOUNT_WINDOW = timedelta(hours=1)
RESET_MAX_PER_ADDRESS = 10
RESET_ADDRESS_WINDOW = timedelta(minutes=15)

RESET_REQUESTED = 'password_reset.requested'


# Kind of emailed link -> the message when it no longer works.
LINK_INVALID_MESSAGES = {
    'confirmation': N_('This confirmation link does not work any more: it was already used, it expired, or a newer '
                       'link replaced it.'),
    'password reset': N_('This password reset link does not work any more: it was already used, it expired, or a '
                         'newer link replaced it.'),
    'invitation': N_('This invitation link does not work any more: it was already used, it expired, or a newer '
                     'link replaced it.'),
}


class LinkInvalidError(ValidationError):
    """The link is unknown, used or expired; pages offer to send a new one."""

    def __init__(self, what: str) -> None:
        super().__init__(LINK_INVALID_MESSAGES[what], field='token')


@dataclass(frozen=True)
class EmailStatus:
    email: str
    verified: bool


# --- email verification ----------------------------------------------------------------------------

def email_status(*, actor: Actor) -> EmailStatus:
    with session_scope() as session:
        user = session.get(User, actor.user_id)
        if user is None:
            raise NotFoundError(N_('Account'))
        return EmailStatus(email=user.email, verified=user.email_verified_at is not None)


def ensure_email_verified(session: Session, user_id: int) -> None:
    """Raise a ValidationError unless the user confirmed their email address (checked before payment)."""
    user = session.get(User, user_id)
    if user is None or user.email_verified_at is None:
        email = user.email if user is not None else 'your address'
        raise ValidationError(N_('Confirm your email address before you pay: open the link in the email we sent '
                                 'to {email}, or ask for a new link with "Send the link again".'),
                              field='email', email=email)


def resend_verification(*, actor: Actor) -> None:
    """Send the patient a new verification link, which ends the earlier ones.

    Raises ValidationError when the last link went out less than RESEND_INTERVAL ago.
    """
    require_role(actor, Role.PATIENT)
    now = utcnow()
    with session_scope() as session:
        user = session.get(User, actor.user_id)
        if user is None:
            raise NotFoundError(N_('Account'))
        if user.email_verified_at is not None:
            raise ConflictError(N_('Your email address {email} is already confirmed.'), email=user.email)
        last = account_links.latest_issued_at(session, user.id, TokenPurpose.VERIFY_EMAIL)
        if last is not None and now - last < RESEND_INTERVAL:
            raise ValidationError(N_('We sent you a link less than a minute ago. Check your inbox and spam folder, or '
                                     'try again in a minute.'))
        _send_verification(session, user)
        audit.record(session, actor, 'email.verification_sent', 'user', user.id)
    logger.info('verification link sent again to user %s', actor.user_id)


def _send_verification(session: Session, user: User) -> None:
    secret = account_links.issue(session, user.id, TokenPurpose.VERIFY_EMAIL)
    enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email, template='verify_email',
                  context={'name': user.full_name, 'link': account_links.path_for(TokenPurpose.VERIFY_EMAIL, secret)})


def verification_link_works(token: str | None) -> bool:
    """Tell whether a verification link can still be used, without using it."""
    with session_scope() as session:
        return account_links.check(session, token, TokenPurpose.VERIFY_EMAIL) is not None


def verify_email(*, token: str | None, client_address: str | None = None) -> str:
    """Confirm the email address of the link's owner and return that address; raise LinkInvalidError otherwise."""
    with session_scope() as session:
        use = account_links.consume(session, token, TokenPurpose.VERIFY_EMAIL)
        if use is None:
            raise LinkInvalidError('confirmation')
        user = session.get(User, use.user_id)
        assert user is not None
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        audit.record(session, _as_user(user.id, client_address), 'email.verified', 'user', user.id)
        email = user.email
    logger.info('email address of user %s confirmed', use.user_id)
    return email


# --- password reset --------------------------------------------------------------------------------

def request_password_reset(*, email: str, client_address: str | None) -> None:
    """Email a reset link when an active account has this address; otherwise do nothing, silently.

    The caller shows the same message in both cases. Only an invalid address or too many requests
    from one client address raise a ValidationError, and neither depends on whether the account exists.
    """
    email = normalize_email(email)
    email_hash = throttle.hash_key(email)
    now = utcnow()
    with session_scope() as session:
        if client_address and _recent_requests_from(session, client_address, now) >= RESET_MAX_PER_ADDRESS:
            logger.info('password reset request rejected: address limit reached (email hash %s...)', email_hash[:12])
            raise ValidationError(N_('Too many password reset requests from your network. Try again in 15 minutes.'))
        user = session.scalar(select(User).where(User.email == email))
        sent = False
        reason = 'sent'
        if user is None or user.deleted_at is not None:
            reason = 'unknown account'
        elif not user.is_active:
            reason = 'account deactivated'
        elif account_links.count_issued_since(session, user.id, TokenPurpose.RESET_PASSWORD,
                                              now - RESET_ACCOUNT_WINDOW) >= RESET_MAX_PER_ACCOUNT:
            reason = 'account limit reached'
        else:
            secret = account_links.issue(session, user.id, TokenPurpose.RESET_PASSWORD, now=now)
            enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email,
                          template='password_reset',
                          context={'name': user.full_name,
                                   'link': account_links.path_for(TokenPurpose.RESET_PASSWORD, secret)})
            sent = True
        actor = replace(SYSTEM, client_address=client_address)
        if user is not None:
            audit.record(session, actor, RESET_REQUESTED, 'user', user.id, sent=sent, reason=reason)
        else:
            audit.record(session, actor, RESET_REQUESTED, 'email_sha256', email_hash, sent=False, reason=reason)
    who = f'user {user.id}' if user is not None else f'email hash {email_hash[:12]}...'
    logger.info('password reset requested for %s: %s', who, reason)


def _recent_requests_from(session: Session, client_address: str, now) -> int:  # noqa: ANN001
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == RESET_REQUESTED, AuditEvent.client_address == client_address,
        AuditEvent.at >= now - RESET_ADDRESS_WINDOW)) or 0


def reset_link_works(token: str | None) -> bool:
    """Tell whether a reset link can still be used, without using it (the page's GET)."""
    with session_scope() as session:
        return account_links.check(session, token, TokenPurpose.RESET_PASSWORD) is not None


def reset_password(*, token: str | None, new_password: str, client_address: str | None = None) -> None:
    """Set a new password through a reset link and end every session of the account.

    The new password is checked before the link is used, so a too short password leaves the link working.
    """
    check_password(new_password)
    password_hash = password_context.hash(new_password)
    with session_scope() as session:
        use = account_links.consume(session, token, TokenPurpose.RESET_PASSWORD)
        if use is None:
            raise LinkInvalidError('password reset')
        user = session.get(User, use.user_id)
        assert user is not None
        if not user.is_active or user.deleted_at is not None:
            raise ValidationError(N_('This account is deactivated. Contact the practice.'))
        # The link came by email, so using it also proves that the address is the owner's.
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
        account_links.end_unused(session, user.id, TokenPurpose.INVITE)
        ended = _store_new_password(session, user, password_hash, keep_session_id=None)
        audit.record(session, _as_user(user.id, client_address), 'password.reset', 'user', user.id,
                     sessions_ended=len(ended))
        user_id = user.id
    sessions.announce_ended(ended)
    logger.info('password of user %s reset by link, %s session(s) ended', user_id, len(ended))


# --- doctor invitations ----------------------------------------------------------------------------

def invite_link_works(token: str | None) -> bool:
    with session_scope() as session:
        return account_links.check(session, token, TokenPurpose.INVITE) is not None


def accept_invite(*, token: str | None, new_password: str, client_address: str | None = None) -> Actor:
    """Set the invited doctor's first password and return the actor to sign in; raise LinkInvalidError otherwise."""
    check_password(new_password)
    password_hash = password_context.hash(new_password)
    with session_scope() as session:
        use = account_links.consume(session, token, TokenPurpose.INVITE)
        if use is None:
            raise LinkInvalidError('invitation')
        user = session.get(User, use.user_id)
        assert user is not None
        actor = load_actor(session, user.id)
        if actor is None:
            raise ValidationError(N_('This account is deactivated. Contact the practice.'))
        now = utcnow()
        user.password_hash = password_hash
        user.password_changed_at = now
        user.email_verified_at = user.email_verified_at or now
        user.last_login_at = now
        audit.record(session, _as_user(user.id, client_address), 'doctor.invite_accepted', 'user', user.id)
    logger.info('doctor user %s accepted the invitation', actor.user_id)
    return actor


def resend_invite(*, actor: Actor, doctor_id: int) -> None:
    """Send the doctor a new invitation link, which ends the earlier one (admins only)."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        doctor = session.get(Doctor, doctor_id)
        if doctor is None:
            raise NotFoundError(N_('Doctor'))
        user = doctor.user
        if user.password_hash is not None:
            raise ConflictError(N_('{name} has already chosen a password, so no invitation is needed.'),
                                name=user.full_name)
        if not user.is_active or not doctor.is_active:
            raise ConflictError(N_('The account of {name} is deactivated. Reactivate it first.'), name=user.full_name)
        send_invite(session, user)
        audit.record(session, actor, 'doctor.invite_resent', 'doctor', doctor_id, user_id=user.id)
    logger.info('invitation for doctor %s sent again by user %s', doctor_id, actor.user_id)


# --- password change -------------------------------------------------------------------------------

def change_password(*, actor: Actor, current_password: str, new_password: str) -> int:
    """Change the signed-in user's password and end their other sessions; return how many ended.

    A wrong current password counts as a failed sign-in for the account's throttle, so this form
    cannot be used to guess the password of a session left open.
    """
    check_password(new_password)
    if new_password == current_password:
        raise ValidationError(N_('The new password is the same as the current one. Choose a different one.'),
                              field='password')
    with session_scope() as session:
        user = session.get(User, actor.user_id)
        if user is None:
            raise NotFoundError(N_('Account'))
        email, current_hash = user.email, user.password_hash
    with session_scope() as session:
        reservation = throttle.reserve_attempt(session, account=email, address=actor.client_address)
    if current_hash:
        valid, _ = password_context.verify_and_update(current_password, current_hash)
    else:
        password_context.dummy_verify()
        valid = False
    if not valid:
        audit.record_now(actor, 'password.change_failed', 'user', actor.user_id, reason='wrong current password')
        logger.info('password change of user %s rejected: wrong current password', actor.user_id)
        if reservation.locked_until is not None:
            raise throttle.SignInThrottledError(reservation.locked_until - utcnow(), password_was_checked=False)
        raise ValidationError(N_('Current password is incorrect.'), field='current_password')

    password_hash = password_context.hash(new_password)
    with session_scope() as session:
        throttle.take_back(session, reservation)
        user = session.get(User, actor.user_id)
        assert user is not None
        ended = _store_new_password(session, user, password_hash, keep_session_id=actor.session_id)
        audit.record(session, actor, 'password.changed', 'user', user.id, sessions_ended=len(ended))
    sessions.announce_ended(ended)
    logger.info('user %s changed their password, %s other session(s) ended', actor.user_id, len(ended))
    return len(ended)


def _store_new_password(session: Session, user: User, password_hash: str, *,
                        keep_session_id: int | None) -> list[int]:
    """Save the hash, end sessions (all but `keep_session_id`), unused reset links and the throttle count.

    Also queues the "your password was changed" email. Returns the ended session ids, to announce after commit.
    """
    now = utcnow()
    user.password_hash = password_hash
    user.password_changed_at = now
    account_links.end_unused(session, user.id, TokenPurpose.RESET_PASSWORD, now=now)
    session.execute(delete(SignInAttempt).where(SignInAttempt.key_kind == throttle.ACCOUNT,
                                                SignInAttempt.key_hash == throttle.hash_key(user.email)))
    ended = sessions.end_for_user(session, user.id, reason=sessions.PASSWORD_CHANGED,
                                  keep_session_id=keep_session_id)
    enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email, template='password_changed',
                  context={'name': user.full_name, 'changed_at': now.isoformat()})
    return ended


def _as_user(user_id: int, client_address: str | None) -> Actor:
    """Return the actor for audit rows of someone who acts through an emailed link, not through a session."""
    return Actor(user_id=user_id, role='link', name='', client_address=client_address)
