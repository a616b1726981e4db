"""Accounts: users with a role, and the patient or doctor profile attached to them."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class Role(StrEnum):
    PATIENT = 'patient'
    DOCTOR = 'doctor'
    ADMIN = 'admin'


class User(Base):
    __tablename__ = 'users'

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    # Code of the language of pages, emails, texts and report PDFs (a key of i18n.LANGUAGES).
    language: Mapped[str] = mapped_column(String(8), default='en', server_default='en')
    login_provider: Mapped[str] = mapped_column(String(32), default='password')
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Set when the owner opened the verification link, or signed in through a provider that vouches for it.
    email_verified_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    # The TOTP secret, encrypted with a key derived from the storage secret; enabled once confirmed by a code.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None]
    # The last accepted TOTP time step, so that one code cannot be used twice.
    totp_last_step: Mapped[int | None]
    # Set when the account was deleted at its owner's request: the row stays for the ledger and the
    # audit log, with every personal field replaced.
    deleted_at: Mapped[datetime | None]

    patient: Mapped[Patient | None] = relationship(back_populates='user', uselist=False)
    doctor: Mapped[Doctor | None] = relationship(back_populates='user', uselist=False)


class Patient(Base):
    __tablename__ = 'patients'

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'), unique=True)
    date_of_birth: Mapped[date] = mapped_column(Date)
    notify_email: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_sms: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship(back_populates='patient')


class Doctor(Base):
    __tablename__ = 'doctors'

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'), unique=True)
    license_number: Mapped[str] = mapped_column(String(64), unique=True)
    specialty: Mapped[str] = mapped_column(String(120))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    user: Mapped[User] = relationship(back_populates='doctor')
