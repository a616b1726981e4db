"""Access rules for examinations. Every page and route calls these checks.

Refusals of an examination that exists are written to the audit log as `access.denied` (after the
caller's transaction, see `deny`). A request for an id that does not exist writes nothing: it
touches nobody's data, and a row per invented URL would let anyone grow the append-only table.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import Examination, ExamStatus, Role
from . import audit
from .actors import SHARE_ROLE, Actor
from .errors import ConflictError, NotFoundError


def can_view(actor: Actor, exam: Examination) -> bool:
    """Patients see their own examinations; doctors see paid cases waiting and the ones they accepted."""
    if actor.role == Role.ADMIN:
        return True
    if actor.role == Role.PATIENT:
        return actor.patient_id is not None and exam.patient_id == actor.patient_id
    if actor.role == Role.DOCTOR:
        if exam.status == ExamStatus.PENDING:
            return True
        return actor.doctor_id is not None and exam.doctor_id == actor.doctor_id
    if actor.role == SHARE_ROLE:
        return actor.shared_examination_id is not None and exam.id == actor.shared_examination_id
    return False


def can_view_images(actor: Actor, exam: Examination) -> bool:
    """Image data: the owner, an admin, any doctor while the case waits, and the accepting doctor after."""
    return can_view(actor, exam)


def deny(session: Session, actor: Actor, exam: Examination, reason: str) -> NotFoundError:
    """Record that the actor was refused an existing examination, and return the error to raise.

    The caller raises the same NotFoundError as for a missing examination, so the answer the user
    gets does not tell whether the examination exists.
    """
    audit.record_denied_after(session, actor, 'examination', exam.id, reason=reason, role=actor.role)
    return NotFoundError('Examination')


def get_visible_exam(session: Session, actor: Actor, examination_id: str) -> Examination:
    """Return the examination, or raise the same NotFoundError for a missing one and a forbidden one."""
    exam = session.get(Examination, examination_id) if examination_id else None
    if exam is None:
        raise NotFoundError('Examination')
    if not can_view(actor, exam):
        raise deny(session, actor, exam, 'not visible to this user')
    return exam


def get_own_draft(session: Session, actor: Actor, examination_id: str) -> Examination:
    """Return a draft of the acting patient, the only state in which files and details may change."""
    exam = get_visible_exam(session, actor, examination_id)
    if actor.role != Role.PATIENT or exam.patient_id != actor.patient_id:
        raise deny(session, actor, exam, 'only the patient may change a draft')
    if exam.status != ExamStatus.DRAFT:
        raise ConflictError('This examination was already submitted, so its files and details can no longer change.')
    return exam
