"""The examination state machine and the patient's side of an examination.

Every transition checks the actor's role and the current state in one transaction, writes an
audit event and, after the commit, publishes an `ExamChanged` event for live pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..i18n import JoinedMessage, Message, N_
from ..models import (Doctor, Examination, ExamStatus, ImageLink, Patient, Role, Study, StudyFile, Urgency, User)
from ..models.base import utcnow
from . import audit, events, review_policy
from .access import deny, get_own_draft, get_visible_exam
from .account_lifecycle import ensure_email_verified
from .actors import SYSTEM, Actor, require_role
from .drafts import missing_items
from .errors import ConflictError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

MODALITIES = {
    'CT': N_('CT (computed tomography)'),
    'MR': N_('MRI (magnetic resonance)'),
    'CR': N_('X-ray (computed radiography)'),
    'DX': N_('X-ray (digital radiography)'),
    'US': N_('Ultrasound'),
    'MG': N_('Mammography'),
    'NM': N_('Nuclear medicine'),
    'PT': N_('PET'),
    'OT': N_('Other'),
}

STATUS_LABELS = {
    ExamStatus.DRAFT: N_('Draft'),
    ExamStatus.AWAITING_PAYMENT: N_('Awaiting payment'),
    ExamStatus.PENDING: N_('Waiting for a radiologist'),
    ExamStatus.UNDER_REVIEW: N_('Under review'),
    ExamStatus.REPORTED: N_('Report ready'),
    ExamStatus.COMPLETED: N_('Completed'),
    ExamStatus.CANCELLED: N_('Cancelled'),
}

# The status in the middle of a sentence, e.g. "This examination is under review and ...".
STATUS_PHRASES = {
    ExamStatus.DRAFT: N_('draft'),
    ExamStatus.AWAITING_PAYMENT: N_('awaiting payment'),
    ExamStatus.PENDING: N_('waiting for a radiologist'),
    ExamStatus.UNDER_REVIEW: N_('under review'),
    ExamStatus.REPORTED: N_('report ready'),
    ExamStatus.COMPLETED: N_('completed'),
    ExamStatus.CANCELLED: N_('cancelled'),
}
UNKNOWN_MODALITY = N_('Modality "{modality}" is unknown. Choose one from the list.')
UNKNOWN_URGENCY = N_('Urgency "{urgency}" is unknown. Choose routine or urgent.')
# Clinical detail field -> the message when its text is longer than the field's limit.
DETAIL_TOO_LONG = {
    'body_part': N_('Body part must have at most {limit} characters.'),
    'clinical_question': N_('Clinical question must have at most {limit} characters.'),
    'history': N_('History must have at most {limit} characters.'),
    'prior_report_text': N_('Prior report text must have at most {limit} characters.'),
}

MAX_LINKS = 10


@dataclass(frozen=True)
class ExamView:
    """Examination data for pages, as plain values that stay valid after the session closed."""

    id: str
    status: str
    status_label: str
    patient_name: str
    patient_birth_date: str
    doctor_id: int | None
    doctor_name: str | None
    modality: str
    body_part: str
    clinical_question: str
    history: str
    urgency: str
    prior_report_text: str
    price_cents: int | None
    currency: str | None
    created_at: datetime
    submitted_at: datetime | None
    paid_at: datetime | None
    due_at: datetime | None
    accepted_at: datetime | None
    reported_at: datetime | None
    completed_at: datetime | None
    image_count: int
    cancelled_at: datetime | None
    links: tuple[tuple[int, str, str], ...]
    # In de-identified review a doctor gets a pseudonym as patient_name, no birth date, and these two instead.
    deidentified: bool = False
    patient_age: str = ''  # readable, such as "45 years"
    patient_sex: str = ''  # M, F or O, as the images record it


def _view(session: Session, actor: Actor, exam: Examination) -> ExamView:
    return _views(session, actor, [exam])[0]


def _views(session: Session, actor: Actor, exams: list[Examination]) -> list[ExamView]:
    """Build the views of many examinations with a handful of queries in all, not a handful per examination.

    For a doctor in de-identified review, the patient's name and date of birth are replaced by a
    pseudonym, the age and the sex recorded in the images.
    """
    if not exams:
        return []
    exam_ids = [exam.id for exam in exams]
    deidentified = review_policy.deidentified_exam_ids(session, actor, exams)
    sexes: dict[str, str] = {}
    if deidentified:
        for examination_id, sex in session.execute(
                select(Study.examination_id, Study.patient_sex)
                .where(Study.examination_id.in_(deidentified), Study.patient_sex != '').order_by(Study.id)):
            sexes.setdefault(examination_id, sex)
    today = utcnow().date()
    patients = {patient_id: (name, birth_date) for patient_id, name, birth_date in session.execute(
        select(Patient.id, User.full_name, Patient.date_of_birth).join(User, Patient.user_id == User.id)
        .where(Patient.id.in_({exam.patient_id for exam in exams})))}
    doctor_ids = {exam.doctor_id for exam in exams if exam.doctor_id is not None}
    doctor_names = dict(session.execute(
        select(Doctor.id, User.full_name).join(User, Doctor.user_id == User.id)
        .where(Doctor.id.in_(doctor_ids))).all()) if doctor_ids else {}
    image_counts = dict(session.execute(
        select(StudyFile.examination_id, func.count()).where(StudyFile.examination_id.in_(exam_ids),
                                                             StudyFile.kind == 'dicom')
        .group_by(StudyFile.examination_id)).all())
    links: dict[str, list[tuple[int, str, str]]] = {}
    for link in session.scalars(select(ImageLink).where(ImageLink.examination_id.in_(exam_ids))
                                .order_by(ImageLink.id)):
        links.setdefault(link.examination_id, []).append((link.id, link.url, link.note))

    views = []
    for exam in exams:
        patient_name, birth_date = patients[exam.patient_id]
        hidden = exam.id in deidentified
        views.append(ExamView(
            id=exam.id, status=exam.status, status_label=STATUS_LABELS[ExamStatus(exam.status)],
            patient_name=review_policy.pseudonym(exam.id) if hidden else patient_name,
            patient_birth_date='' if hidden else birth_date.isoformat(),
            doctor_id=exam.doctor_id, doctor_name=doctor_names.get(exam.doctor_id) if exam.doctor_id else None,
            modality=exam.modality, body_part=exam.body_part,
            clinical_question=exam.clinical_question, history=exam.history, urgency=exam.urgency,
            prior_report_text=exam.prior_report_text, price_cents=exam.price_cents, currency=exam.currency,
            created_at=exam.created_at, submitted_at=exam.submitted_at, paid_at=exam.paid_at, due_at=exam.due_at,
            accepted_at=exam.accepted_at, reported_at=exam.reported_at, completed_at=exam.completed_at,
            image_count=image_counts.get(exam.id, 0), cancelled_at=exam.cancelled_at,
            links=tuple(links.get(exam.id, ())),
            deidentified=hidden,
            patient_age=review_policy.patient_age(birth_date, today) if hidden else '',
            patient_sex=sexes.get(exam.id, '') if hidden else '',
        ))
    return views


def _status_conflict(message: str, status: str) -> ConflictError:
    """Return a ConflictError whose {status} placeholder is the status phrase, translated with the message."""
    error = ConflictError(message, status=STATUS_PHRASES[ExamStatus(status)])
    error.translated_params = ('status',)
    return error


def _publish(exam_id: str, status: str, doctor_id: int | None) -> None:
    events.publish(events.ExamChanged(examination_id=exam_id, status=status, doctor_id=doctor_id))


# --- patient: drafts ---------------------------------------------------------------------------

def create_draft(*, actor: Actor) -> str:
    """Start a new examination for the acting patient and return its id."""
    require_role(actor, Role.PATIENT)
    with session_scope() as session:
        exam = Examination(patient_id=actor.patient_id, status=ExamStatus.DRAFT)
        session.add(exam)
        session.flush()
        audit.record(session, actor, 'examination.created', 'examination', exam.id)
        logger.info('examination %s created by user %s', exam.id, actor.user_id)
        return exam.id


def open_new_draft(*, actor: Actor) -> str:
    """Return the patient's newest untouched draft, or start a new one, so repeated clicks leave no empty drafts."""
    require_role(actor, Role.PATIENT)
    with session_scope() as session:
        drafts = session.scalars(select(Examination).where(
            Examination.patient_id == actor.patient_id, Examination.status == ExamStatus.DRAFT,
            Examination.modality == '', Examination.body_part == '', Examination.clinical_question == '',
            Examination.history == '', Examination.prior_report_text == '')
            .order_by(Examination.created_at.desc())).all()
        for draft in drafts:
            has_files = session.scalar(select(func.count()).select_from(StudyFile)
                                       .where(StudyFile.examination_id == draft.id))
            if not has_files and not draft.links:
                return draft.id
    return create_draft(actor=actor)


def suggest_details(*, actor: Actor, examination_id: str) -> tuple[str, str]:
    """Return the examination type and body part that the uploaded images suggest, '' where they have none."""
    from .studies import get_study_summary

    series = [item for study in get_study_summary(actor=actor, examination_id=examination_id).studies
              for item in study.series]
    modality = next((item.modality for item in series if item.modality in MODALITIES), '')
    body_part = next((item.body_part for item in series if item.body_part), '')
    # DICOM writes body parts in capitals with underscores, such as "CSPINE" or "LOWER_LEG".
    return modality, body_part.replace('_', ' ').capitalize()


def update_details(*, actor: Actor, examination_id: str, modality: str, body_part: str, clinical_question: str,
                   history: str = '', urgency: str = Urgency.ROUTINE, prior_report_text: str = '') -> None:
    """Save the clinical details of a draft; a draft may be saved incomplete."""
    modality = (modality or '').strip().upper()
    if modality and modality not in MODALITIES:
        raise ValidationError(UNKNOWN_MODALITY, field='modality', modality=modality)
    if urgency not in {u.value for u in Urgency}:
        raise ValidationError(UNKNOWN_URGENCY, field='urgency', urgency=urgency)
    fields = {'body_part': (body_part, 120), 'clinical_question': (clinical_question, 4000),
              'history': (history, 8000), 'prior_report_text': (prior_report_text, 20000)}
    for name, (value, limit) in fields.items():
        if len(value or '') > limit:
            raise ValidationError(DETAIL_TOO_LONG[name], field=name, limit=limit)
    with session_scope() as session:
        exam = get_own_draft(session, actor, examination_id)
        exam.modality = modality
        exam.body_part = (body_part or '').strip()
        exam.clinical_question = (clinical_question or '').strip()
        exam.history = (history or '').strip()
        exam.urgency = urgency
        exam.prior_report_text = (prior_report_text or '').strip()


def add_link(*, actor: Actor, examination_id: str, url: str, note: str = '') -> None:
    """Attach a link to images stored elsewhere (an http or https address)."""
    url = (url or '').strip()
    parsed = urlparse(url)
    if parsed.scheme not in {'http', 'https'} or not parsed.netloc:
        raise ValidationError(N_('Link "{url}" is invalid: give a full address starting with https://.'),
                              field='url', url=url)
    if len(url) > 2000:
        raise ValidationError(N_('Link must have at most 2000 characters.'), field='url')
    with session_scope() as session:
        exam = get_own_draft(session, actor, examination_id)
        if len(exam.links) >= MAX_LINKS:
            raise ValidationError(N_('An examination can have at most {maximum} links.'), field='url',
                                  maximum=MAX_LINKS)
        session.add(ImageLink(examination_id=exam.id, url=url, note=(note or '').strip()[:500]))


def remove_link(*, actor: Actor, examination_id: str, link_id: int) -> None:
    with session_scope() as session:
        exam = get_own_draft(session, actor, examination_id)
        link = session.get(ImageLink, link_id)
        if link is None or link.examination_id != exam.id:
            raise NotFoundError(N_('Link'))
        session.delete(link)


def submit(*, actor: Actor, examination_id: str) -> None:
    """Move a complete draft to awaiting_payment and fix its price."""
    settings = get_settings()
    with session_scope() as session:
        exam = get_own_draft(session, actor, examination_id)
        missing = missing_items(session, exam)
        if missing:
            # The item labels are msgids, so the list is translated along with the message where it is shown.
            raise ValidationError(N_('Cannot submit yet. Missing: {items}.'),
                                  items=JoinedMessage([Message(item.label) for item in missing], ', '))
        ensure_email_verified(session, actor.user_id)
        exam.status = ExamStatus.AWAITING_PAYMENT
        exam.submitted_at = utcnow()
        exam.price_cents = settings.price_for(exam.modality, exam.urgency)
        exam.currency = settings.currency
        audit.record(session, actor, 'examination.submitted', 'examination', exam.id, price_cents=exam.price_cents)
        logger.info('examination %s submitted, price %.2f %s', exam.id, exam.price_cents / 100, exam.currency)
    _publish(examination_id, ExamStatus.AWAITING_PAYMENT, None)


def cancel(*, actor: Actor, examination_id: str, reason: str = '') -> None:
    """Cancel an examination and refund it when paid.

    Patients cancel their own examinations until a doctor accepts one; admins cancel any, also
    while a doctor reviews it.
    """
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if actor.role not in {Role.PATIENT, Role.ADMIN}:
            raise deny(session, actor, exam, 'only the patient or an admin may cancel')
        allowed = {ExamStatus.DRAFT, ExamStatus.AWAITING_PAYMENT, ExamStatus.PENDING}
        if actor.role == Role.ADMIN:
            allowed.add(ExamStatus.UNDER_REVIEW)
        if exam.status not in allowed:
            raise _status_conflict(N_('This examination is {status} and can no longer be cancelled.'), exam.status)
        cancel_in_session(session, actor, exam, reason=reason)
    _publish(examination_id, ExamStatus.CANCELLED, None)


def cancel_in_session(session: Session, actor: Actor, exam: Examination, *, reason: str = '') -> None:
    """Cancel the examination in the caller's transaction: close its open checkout, or refund it when paid.

    The caller has checked that the actor may cancel it in its current state, and publishes the
    change after the commit.
    """
    previous = exam.status
    exam.status = ExamStatus.CANCELLED
    exam.cancelled_at = utcnow()
    from .payments import close_open_checkout_in_session, refund_in_session
    if previous == ExamStatus.AWAITING_PAYMENT:
        close_open_checkout_in_session(session, exam)
    elif previous in {ExamStatus.PENDING, ExamStatus.UNDER_REVIEW}:
        refund_in_session(session, exam, actor)
    audit.record(session, actor, 'examination.cancelled', 'examination', exam.id, reason=reason[:500])
    logger.info('examination %s cancelled by user %s', exam.id, actor.user_id)


# --- doctor: accept and release ------------------------------------------------------------------

def accept(*, actor: Actor, examination_id: str) -> None:
    """Give a pending case to the acting doctor; exactly one of several concurrent doctors wins."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        doctor = session.get(Doctor, actor.doctor_id)
        if doctor is None or not doctor.is_active or not doctor.user.is_active:
            raise ConflictError(N_('Your account is deactivated, so you cannot accept cases.'))
        # Compare-and-set: the UPDATE only matches while the case is still pending, so when two doctors
        # accept at once the database changes the row for one of them and returns rowcount 0 to the other.
        result = session.execute(
            update(Examination)
            .where(Examination.id == examination_id, Examination.status == ExamStatus.PENDING)
            .values(status=ExamStatus.UNDER_REVIEW, doctor_id=doctor.id, accepted_at=utcnow())
        )
        if result.rowcount != 1:
            exam = session.get(Examination, examination_id)
            if exam is None:
                raise NotFoundError(N_('Examination'))
            if exam.status in {ExamStatus.DRAFT, ExamStatus.AWAITING_PAYMENT}:
                raise deny(session, actor, exam, 'not paid yet, so not offered to doctors')
            if exam.status == ExamStatus.CANCELLED:
                raise ConflictError(N_('This case was cancelled by the patient.'))
            raise ConflictError(N_('This case was already accepted by another doctor.'))
        exam = session.get(Examination, examination_id)
        assert exam is not None
        patient = session.get(Patient, exam.patient_id)
        assert patient is not None
        from .notifications import notify_patient
        notify_patient(session, patient_user_id=patient.user_id, examination_id=exam.id, template='case_accepted',
                       context={'patient_name': patient.user.full_name, 'examination_id': exam.id})
        audit.record(session, actor, 'examination.accepted', 'examination', examination_id)
        logger.info('examination %s accepted by doctor %s', examination_id, doctor.id)
    _publish(examination_id, ExamStatus.UNDER_REVIEW, actor.doctor_id)


def release(*, actor: Actor, examination_id: str) -> None:
    """Give a case under review back to the pending list."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        result = session.execute(
            update(Examination)
            .where(Examination.id == examination_id, Examination.status == ExamStatus.UNDER_REVIEW,
                   Examination.doctor_id == actor.doctor_id)
            .values(status=ExamStatus.PENDING, doctor_id=None, accepted_at=None)
        )
        if result.rowcount != 1:
            exam = get_visible_exam(session, actor, examination_id)
            raise _status_conflict(N_('This case is {status}, so it cannot be released.'), exam.status)
        audit.record(session, actor, 'examination.released', 'examination', examination_id)
        logger.info('examination %s released by doctor %s', examination_id, actor.doctor_id)
    _publish(examination_id, ExamStatus.PENDING, None)


def mark_patient_notified(*, examination_id: str) -> bool:
    """Move a reported examination to completed once the report email went out; True when it moved."""
    with session_scope() as session:
        result = session.execute(
            update(Examination)
            .where(Examination.id == examination_id, Examination.status == ExamStatus.REPORTED)
            .values(status=ExamStatus.COMPLETED, completed_at=utcnow())
        )
        if result.rowcount != 1:
            return False
        exam = session.get(Examination, examination_id)
        assert exam is not None
        audit.record(session, SYSTEM, 'examination.completed', 'examination', examination_id)
        logger.info('examination %s completed: patient notified', examination_id)
        doctor_id = exam.doctor_id
    _publish(examination_id, ExamStatus.COMPLETED, doctor_id)
    return True


# --- reads -------------------------------------------------------------------------------------

def get_exam(*, actor: Actor, examination_id: str) -> ExamView:
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        return _view(session, actor, exam)


def view_exam(*, actor: Actor, examination_id: str, page: str, own_case: bool = False) -> ExamView:
    """Return the examination for a page that shows it, and write `examination.viewed` for the opening.

    `page` names the page in the audit row. With `own_case`, a doctor gets only a case they
    accepted (the review page); a pending case of the board is then refused and recorded so.
    Later refreshes of an open page use `get_exam`, which writes nothing.
    """
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if own_case and actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            raise deny(session, actor, exam, 'not the accepting doctor')
        audit.record(session, actor, 'examination.viewed', 'examination', exam.id, page=page)
        return _view(session, actor, exam)


def list_for_patient(*, actor: Actor) -> list[ExamView]:
    require_role(actor, Role.PATIENT)
    with session_scope() as session:
        exams = session.scalars(select(Examination).where(Examination.patient_id == actor.patient_id)
                                .order_by(Examination.created_at.desc())).all()
        return _views(session, actor, list(exams))


def list_pending(*, actor: Actor, limit: int = 50, offset: int = 0, modality: str | None = None,
                 body_part: str | None = None, urgency: str | None = None) -> tuple[list[ExamView], int]:
    """Return one page of paid cases waiting for a doctor and the number of all that match the filters.

    The order is the least time left to the promised report first, then the id, so pages do not overlap.
    `modality` and `urgency` match exactly, `body_part` matches body parts that contain it in any
    letter case, and an empty or missing filter matches every case.
    """
    require_role(actor, Role.DOCTOR, Role.ADMIN)
    if limit < 1 or offset < 0:
        raise ValidationError(N_('Invalid page: limit must be at least 1 and offset at least 0, got limit {limit} '
                                 'and offset {offset}.'), limit=limit, offset=offset)
    modality = (modality or '').strip().upper()
    if modality and modality not in MODALITIES:
        raise ValidationError(UNKNOWN_MODALITY, field='modality', modality=modality)
    urgency = (urgency or '').strip().lower()
    if urgency and urgency not in {u.value for u in Urgency}:
        raise ValidationError(UNKNOWN_URGENCY, field='urgency', urgency=urgency)
    body_part = (body_part or '').strip()

    with session_scope() as session:
        query = select(Examination).where(Examination.status == ExamStatus.PENDING)
        if modality:
            query = query.where(Examination.modality == modality)
        if urgency:
            query = query.where(Examination.urgency == urgency)
        if body_part:
            # NOTE: icontains compares lower() of both sides. SQLite's lower() changes only ASCII
            # letters, so there "KNEE" finds "knee" but "ÖDEM" does not find "ödem".
            query = query.where(Examination.body_part.icontains(body_part, autoescape=True))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        exams = session.scalars(query.order_by(Examination.due_at.asc().nulls_last(), Examination.id.asc())
                                .limit(limit).offset(offset)).all()
        return _views(session, actor, list(exams)), total


def list_for_doctor(*, actor: Actor) -> list[ExamView]:
    """Return the acting doctor's own cases: under review first, then reported and completed."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        exams = session.scalars(select(Examination).where(Examination.doctor_id == actor.doctor_id)
                                .order_by(Examination.accepted_at.desc())).all()
        order = {ExamStatus.UNDER_REVIEW: 0, ExamStatus.REPORTED: 1, ExamStatus.COMPLETED: 2}
        views = _views(session, actor, list(exams))
        return sorted(views, key=lambda view: order.get(ExamStatus(view.status), 3))


def list_all(*, actor: Actor, status: str | None = None, limit: int = 500) -> list[ExamView]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        query = select(Examination).order_by(Examination.created_at.desc()).limit(limit)
        if status:
            query = query.where(Examination.status == status)
        return _views(session, actor, list(session.scalars(query).all()))


def list_overdue(*, actor: Actor, now: datetime | None = None) -> list[ExamView]:
    """Return the paid cases without a report past their promised time, the longest overdue first."""
    require_role(actor, Role.ADMIN)
    now = now or utcnow()
    with session_scope() as session:
        exams = session.scalars(select(Examination)
                                .where(Examination.status.in_([ExamStatus.PENDING, ExamStatus.UNDER_REVIEW]),
                                       Examination.due_at < now)
                                .order_by(Examination.due_at.asc())).all()
        return _views(session, actor, list(exams))


def patient_email(session: Session, exam: Examination) -> tuple[int, str, str]:
    """Return (user id, email, full name) of the examination's patient."""
    patient = session.get(Patient, exam.patient_id)
    assert patient is not None
    user = session.get(User, patient.user_id)
    assert user is not None
    return user.id, user.email, user.full_name
