"""Read models for the admin panel: doctors and patients (incomes are in ledger.py, the audit log in audit_log.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..db import session_scope
from ..models import Doctor, Examination, Patient, Role, User
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
    user_id: int = 0
    # True until the doctor chose a password through the invitation link.
    invited: bool = False

    @property
    def state(self) -> str:
        """"deactivated", "invited" (no password chosen yet) or "active"."""
        if not self.is_active:
            return 'deactivated'
        return 'invited' if self.invited else 'active'


@dataclass(frozen=True)
class PatientRow:
    id: int
    name: str
    email: str
    phone: str
    date_of_birth: str
    examinations: int
    registered_at: datetime
    user_id: int = 0
    is_active: bool = True
    email_verified: bool = False


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
                                  is_active=doctor.is_active and doctor.user.is_active, cases=cases,
                                  user_id=doctor.user_id, invited=doctor.user.password_hash is None))
        return rows


def list_patients(*, actor: Actor) -> list[PatientRow]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        # Deleted accounts keep their row for the ledger, but there is no one left to manage.
        patients = session.scalars(select(Patient).join(User).where(User.deleted_at.is_(None))
                                   .order_by(User.created_at.desc())).all()
        return [PatientRow(id=patient.id, name=patient.user.full_name, email=patient.user.email,
                           phone=patient.user.phone or '', date_of_birth=patient.date_of_birth.isoformat(),
                           examinations=session.scalar(select(func.count()).select_from(Examination)
                                                       .where(Examination.patient_id == patient.id)) or 0,
                           registered_at=patient.user.created_at, user_id=patient.user_id,
                           is_active=patient.user.is_active,
                           email_verified=patient.user.email_verified_at is not None)
                for patient in patients]
