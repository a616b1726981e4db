"""Single-use links sent by email: email verification, password reset and a doctor's invitation.

Each link carries a random secret (`secrets.token_urlsafe(32)`); the database stores only its
SHA-256 in `account_tokens`. A link works once and only until it expires:

- email verification: 48 hours (VERIFY_EMAIL_LIFETIME)
- password reset: 1 hour (RESET_PASSWORD_LIFETIME)
- doctor invitation: 7 days (INVITE_LIFETIME)

Issuing a new link of one purpose ends the user's older unused links of that purpose, so only the
newest email works. `consume` is a compare-and-set UPDATE (... WHERE used_at IS NULL AND
expires_at > now), so of two clicks at the same moment exactly one wins.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from ..models import AccountToken, TokenPurpose
from ..models.base import utcnow

logger = logging.getLogger(__name__)

VERIFY_EMAIL_LIFETIME = timedelta(hours=48)
RESET_PASSWORD_LIFETIME = timedelta(hours=1)
INVITE_LIFETIME = timedelta(days=7)

LIFETIMES = {
    TokenPurpose.VERIFY_EMAIL: VERIFY_EMAIL_LIFETIME,
    TokenPurpose.RESET_PASSWORD: RESET_PASSWORD_LIFETIME,
    TokenPurpose.INVITE: INVITE_LIFETIME,
}

# The page that each kind of link opens; the secret follows as `?token=...`.
PATHS = {
    TokenPurpose.VERIFY_EMAIL: '/verify-email',
    TokenPurpose.RESET_PASSWORD: '/reset-password',
    TokenPurpose.INVITE: '/invite',
}

# Secrets are at most this long; anything longer in a URL is not one of ours and is not looked up.
MAX_SECRET_LENGTH = 128

# `token=<secret>` in a URL, also in quoted-printable email source, where "=" is written "=3D" and a
# line may be broken by a soft line break ("=" at the end of the line) at any character.
_SOFT_BREAK = r'(?:=\r?\n)?'
_TOKEN_PARAMETER = re.compile(
    '(' + _SOFT_BREAK.join('token=') + _SOFT_BREAK + '(?:3D)?)' + r'((?:[A-Za-z0-9_\-]|=\r?\n)+)')
REDACTED = 'REMOVED'


@dataclass(frozen=True)
class LinkUse:
    """A link that was valid: whose it is and when it was created."""

    token_id: int
    user_id: int
    created_at: datetime


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def path_for(purpose: str, secret: str) -> str:
    """Return the site path of the link, e.g. "/reset-password?token=..."; secrets are URL-safe already."""
    return f'{PATHS[purpose]}?token={secret}'


def issue(session: Session, user_id: int, purpose: str, *, now: datetime | None = None) -> str:
    """Store a new link for the user in the caller's transaction and return its secret.

    The user's older unused links of the same purpose stop working at once.
    """
    if purpose not in LIFETIMES:
        raise ValueError(f'link purpose "{purpose}" is unknown: use one of {", ".join(LIFETIMES)}')
    now = now or utcnow()
    superseded: CursorResult = session.execute(  # type: ignore[assignment]
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None),
               AccountToken.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False))
    secret = secrets.token_urlsafe(32)
    row = AccountToken(user_id=user_id, purpose=purpose, token_hash=digest(secret), created_at=now,
                       expires_at=now + LIFETIMES[purpose])
    session.add(row)
    session.flush()
    logger.info('%s link %s issued for user %s (%s older link(s) ended)', purpose, row.id, user_id,
                superseded.rowcount or 0)
    return secret


def check(session: Session, secret: str | None, purpose: str, *, now: datetime | None = None) -> LinkUse | None:
    """Return the link when it is known, unused and not expired, without using it up; None otherwise."""
    if not _plausible(secret):
        return None
    now = now or utcnow()
    row = session.scalar(select(AccountToken).where(
        AccountToken.token_hash == digest(secret or ''), AccountToken.purpose == purpose,
        AccountToken.used_at.is_(None), AccountToken.expires_at > now))
    if row is None:
        return None
    return LinkUse(token_id=row.id, user_id=row.user_id, created_at=row.created_at)


def consume(session: Session, secret: str | None, purpose: str, *, now: datetime | None = None) -> LinkUse | None:
    """Mark the link used in the caller's transaction and return it; None when unknown, used or expired.

    The UPDATE matches only an unused, unexpired row, so two requests with the same link cannot both
    get it. The caller's transaction should hold the change that the link allows, so that a failure
    there leaves the link unused.
    """
    if not _plausible(secret):
        return None
    now = now or utcnow()
    token_hash = digest(secret or '')
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(AccountToken)
        .where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose,
               AccountToken.used_at.is_(None), AccountToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        logger.info('%s link rejected: unknown, used or expired', purpose)
        return None
    row = session.scalar(select(AccountToken).where(AccountToken.token_hash == token_hash))
    assert row is not None
    logger.info('%s link %s used by user %s', purpose, row.id, row.user_id)
    return LinkUse(token_id=row.id, user_id=row.user_id, created_at=row.created_at)


def end_unused(session: Session, user_id: int, purpose: str, *, now: datetime | None = None) -> int:
    """End the user's unused links of one purpose (e.g. reset links after the password changed); return how many."""
    now = now or utcnow()
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None),
               AccountToken.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount or 0


def count_issued_since(session: Session, user_id: int, purpose: str, since: datetime) -> int:
    """Return how many links of one purpose the user was sent since `since` (for rate limits)."""
    return session.scalar(select(func.count()).select_from(AccountToken).where(
        AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.created_at >= since)) or 0


def latest_issued_at(session: Session, user_id: int, purpose: str) -> datetime | None:
    return session.scalar(select(func.max(AccountToken.created_at)).where(
        AccountToken.user_id == user_id, AccountToken.purpose == purpose))


def redact(text: str) -> str:
    """Replace the secret of every `token=` link parameter, also in quoted-printable source, with REMOVED."""
    return _TOKEN_PARAMETER.sub(lambda match: match.group(1) + REDACTED, text)


def _plausible(secret: str | None) -> bool:
    return bool(secret) and len(secret or '') <= MAX_SECRET_LENGTH
