"""Links a patient gives their own physician to read one examination's images and report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class ShareLink(Base):
    __tablename__ = 'share_links'

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey('users.id'))
    # SHA-256 of the secret in the link; the secret itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Who the link is for, in the patient's words, such as "Dr. Meier, family doctor".
    label: Mapped[str] = mapped_column(String(120), default='')
    # Argon2 hash of the optional access code that the patient gives the physician separately.
    access_code_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None]
    # Wrong access codes in a row; the link locks for a while after too many.
    failed_codes: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
