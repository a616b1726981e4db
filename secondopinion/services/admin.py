"""Read models for the admin panel: doctors, patients, incomes and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..db import session_scope
from ..models import AuditEvent, Doctor, Examination, Income, IncomeKind, Patient, Role, User
from .actors import Actor, require_role


@dataclass(frozen=True)
class DoctorRow:
    id: int
    name: str
    email: str
    license_number: str
    specialty: str
    is_active: bool
    cases: int


@dataclass(frozen=True)
class PatientRow:
    id: int
    name: str
    email: str
    phone: str
    date_of_birth: str
    examinations: int
    registered_at: datetime


@dataclass(frozen=True)
class IncomeRow:
    id: int
    created_at: datetime
    examination_id: str
    kind: str
    amount_cents: int
    platform_fee_cents: int
    doctor_share_cents: int
    doctor_name: str
    currency: str


@dataclass(frozen=True)
class IncomeTotals:
    currency: str
    revenue_cents: int
    refunds_cents: int
    platform_fees_cents: int
    doctor_earnings_cents: int


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str


def list_doctors(*, actor: Actor) -> list[DoctorRow]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        doctors = session.scalars(select(Doctor).join(User).order_by(User.full_name)).all()
        rows = []
        for doctor in doctors:
            cases = session.scalar(select(func.count()).select_from(Examination)
                                   .where(Examination.doctor_id == doctor.id)) or 0
            rows.append(DoctorRow(id=doctor.id, name=doctor.user.full_name, email=doctor.user.email,
                                  license_number=doctor.license_number, specialty=doctor.specialty,
                                  is_active=doctor.is_active, cases=cases))
        return rows


def list_patients(*, actor: Actor) -> list[PatientRow]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        patients = session.scalars(select(Patient).join(User).order_by(User.created_at.desc())).all()
        return [PatientRow(id=patient.id, name=patient.user.full_name, email=patient.user.email,
                           phone=patient.user.phone or '', date_of_birth=patient.date_of_birth.isoformat(),
                           examinations=session.scalar(select(func.count()).select_from(Examination)
                                                       .where(Examination.patient_id == patient.id)) or 0,
                           registered_at=patient.user.created_at)
                for patient in patients]


def list_incomes(*, actor: Actor, limit: int = 500) -> list[IncomeRow]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        incomes = session.scalars(select(Income).order_by(Income.created_at.desc()).limit(limit)).all()
        rows = []
        for income in incomes:
            doctor = session.get(Doctor, income.doctor_id) if income.doctor_id else None
            rows.append(IncomeRow(id=income.id, created_at=income.created_at, examination_id=income.examination_id,
                                  kind=income.kind, amount_cents=income.amount_cents,
                                  platform_fee_cents=income.platform_fee_cents,
                                  doctor_share_cents=income.doctor_share_cents,
                                  doctor_name=doctor.user.full_name if doctor else '', currency=income.currency))
        return rows


def income_totals(*, actor: Actor) -> list[IncomeTotals]:
    """Return revenue, refunds, platform fees and doctor earnings per currency."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        totals: dict[str, dict[str, int]] = {}
        rows = session.execute(select(Income.currency, Income.kind, func.sum(Income.amount_cents),
                                      func.sum(Income.platform_fee_cents))
                               .group_by(Income.currency, Income.kind)).all()
        for currency, kind, amount, fee in rows:
            entry = totals.setdefault(currency, {'revenue': 0, 'refunds': 0, 'fees': 0, 'earnings': 0})
            if kind == IncomeKind.PAYMENT:
                entry['revenue'] += amount or 0
                entry['fees'] += fee or 0
            elif kind == IncomeKind.REFUND:
                entry['refunds'] += amount or 0
            elif kind == IncomeKind.DOCTOR_EARNING:
                entry['earnings'] += amount or 0
        return [IncomeTotals(currency=currency, revenue_cents=v['revenue'], refunds_cents=v['refunds'],
                             platform_fees_cents=v['fees'], doctor_earnings_cents=v['earnings'])
                for currency, v in sorted(totals.items())]


def doctor_earnings(*, actor: Actor) -> list[tuple[str, int, str]]:
    """Return the acting doctor's earnings per month as (YYYY-MM, cents, currency), newest first."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        incomes = session.scalars(select(Income).where(Income.doctor_id == actor.doctor_id,
                                                       Income.kind == IncomeKind.DOCTOR_EARNING)).all()
        months: dict[tuple[str, str], int] = {}
        for income in incomes:
            key = (income.created_at.strftime('%Y-%m'), income.currency)
            months[key] = months.get(key, 0) + income.amount_cents
        return sorted(((month, cents, currency) for (month, currency), cents in months.items()), reverse=True)


def list_audit(*, actor: Actor, limit: int = 300) -> list[AuditRow]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all()
        rows = []
        for event in events:
            user = session.get(User, event.actor_user_id) if event.actor_user_id else None
            rows.append(AuditRow(at=event.at, actor=user.email if user else 'system', action=event.action,
                                 object_type=event.object_type, object_id=event.object_id))
        return rows
