"""The signed-in person on whose behalf a service function runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..models import Doctor, Patient, Role, User
from .errors import PermissionDeniedError


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: str
    name: str
    patient_id: int | None = None
    doctor_id: int | None = None
    # The browser session this actor acts through, and its client address, for the audit log.
    session_id: int | None = None
    client_address: str | None = None
    # For a visitor through a share link (role SHARE_ROLE): the one examination the link opens.
    shared_examination_id: str | None = None
    # The user's language code, for pages and messages shown to this actor.
    language: str = 'en'
    # Whether the user confirmed their email address when the actor was loaded; None when not known.
    email_verified: bool | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


SYSTEM = Actor(user_id=0, role='system', name='system')
# The role of a physician who opened a patient's share link; such an actor has no user account.
SHARE_ROLE = 'share'


def load_actor(session: Session, user_id: int) -> Actor | None:
    """Return the actor for an active user id, or None when the user is missing or deactivated."""
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    patient_id = doctor_id = None
    if user.role == Role.PATIENT:
        patient = session.query(Patient).filter_by(user_id=user.id).one_or_none()
        patient_id = patient.id if patient else None
    elif user.role == Role.DOCTOR:
        doctor = session.query(Doctor).filter_by(user_id=user.id).one_or_none()
        if doctor is None or not doctor.is_active:
            return None
        doctor_id = doctor.id
    return Actor(user_id=user.id, role=user.role, name=user.full_name, patient_id=patient_id, doctor_id=doctor_id,
                 language=user.language or 'en', email_verified=user.email_verified_at is not None)


def require_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise PermissionDeniedError('You are not allowed to do this.')
