"""Signed-in browser sessions, single-use account links, and accounts at outside identity providers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class UserSession(Base):
    """One sign-in of one browser.

    Sign-in first stores a short-lived ticket; the browser trades it once for the session cookie.
    Only SHA-256 hashes of the ticket and of the cookie value are stored.
    """

    __tablename__ = 'user_sessions'

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'), index=True)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    ticket_expires_at: Mapped[datetime | None]
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(index=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32), default='password')
    client_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))


class TokenPurpose:
    VERIFY_EMAIL = 'verify_email'
    RESET_PASSWORD = 'reset_password'
    INVITE = 'invite'


class AccountToken(Base):
    """A link sent by email: email verification, password reset or a doctor's invitation.

    Stored as the SHA-256 of the secret in the link; `used_at` makes it single-use.
    """

    __tablename__ = 'account_tokens'

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ExternalIdentity(Base):
    """An account at an OpenID Connect provider (Microsoft, Google) linked to a user."""

    __tablename__ = 'external_identities'
    __table_args__ = (UniqueConstraint('provider', 'subject', name='uq_external_identities_subject'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
