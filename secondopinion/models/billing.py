"""Payments, processed payment-provider events and the incomes ledger."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class PaymentStatus(StrEnum):
    OPEN = 'open'
    SUCCEEDED = 'succeeded'
    CANCELLED = 'cancelled'
    REFUNDED = 'refunded'


class Payment(Base):
    __tablename__ = 'payments'
    __table_args__ = (UniqueConstraint('provider', 'provider_ref'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    succeeded_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """A payment-provider event id already applied, so a repeated delivery changes nothing."""

    __tablename__ = 'processed_events'

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncomeKind(StrEnum):
    PAYMENT = 'payment'
    PLATFORM_FEE = 'platform_fee'
    DOCTOR_EARNING = 'doctor_earning'
    REFUND = 'refund'
    PLATFORM_FEE_REVERSAL = 'platform_fee_reversal'


class Income(Base):
    """One ledger row: a money movement of one kind for one examination, at most one per kind.

    A payment row also carries the split of its amount between platform fee and doctor share.
    """

    __tablename__ = 'incomes'
    __table_args__ = (UniqueConstraint('examination_id', 'kind', name='uq_incomes_examination_kind'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    examination_id: Mapped[str] = mapped_column(ForeignKey('examinations.id'), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey('payments.id'))
    doctor_id: Mapped[int | None] = mapped_column(ForeignKey('doctors.id'), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    amount_cents: Mapped[int] = mapped_column(Integer)
    platform_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    doctor_share_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
