"""Counters of failed sign-ins per account and per client address, for the sign-in throttle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class SignInAttempt(Base):
    """Failed sign-ins counted against one key: an account's email or a client address.

    The key is stored as the hex SHA-256 of the normalized value, never as the value itself.
    """

    __tablename__ = 'sign_in_attempts'
    __table_args__ = (UniqueConstraint('key_kind', 'key_hash', name='uq_sign_in_attempts_key'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_kind: Mapped[str] = mapped_column(String(16))  # 'account' or 'address'
    key_hash: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
