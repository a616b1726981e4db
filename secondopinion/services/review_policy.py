"""Whether doctors review an examination's images de-identified: an app-wide default and a per-examination choice.

Only doctors get de-identified data. Patients always get their own originals, and admins see the
originals to support both. Stored files never change: de-identification happens on the copy served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..i18n import _, ngettext
from ..models import AppSetting, Examination, Role
from ..models.base import utcnow
from . import audit
from .actors import Actor, require_role
from .deidentify import UidMapper, age_string, uid_mapper
from .dicom_patient import AGE_PATTERN, format_age
from .errors import NotFoundError

logger = logging.getLogger(__name__)

GLOBAL_KEY = 'deidentify_for_doctors'


@dataclass(frozen=True)
class ExamPolicy:
    examination_id: str
    choice: bool | None  # None follows the app-wide default
    effective: bool


def global_default(session: Session) -> bool:
    row = session.get(AppSetting, GLOBAL_KEY)
    return row is not None and row.value == 'true'


def applies(session: Session, actor: Actor, exam: Examination) -> bool:
    """Return whether this actor gets the examination's images and DICOM headers de-identified."""
    if actor.role != Role.DOCTOR:
        return False
    return exam.deidentify if exam.deidentify is not None else global_default(session)


def deidentified_exam_ids(session: Session, actor: Actor, exams: Iterable[Examination]) -> set[str]:
    """Return the ids of the examinations that this actor gets de-identified, reading the app-wide default once."""
    if actor.role != Role.DOCTOR:
        return set()
    default = global_default(session)
    return {exam.id for exam in exams if (exam.deidentify if exam.deidentify is not None else default)}


def pseudonym(examination_id: str) -> str:
    """Return the name that doctors see for the patient in de-identified review, such as "Patient 7F3A9C".

    It is an HMAC-SHA-256 of the examination id keyed by the storage secret: the same for every view of
    one examination, different for two examinations of one patient, and not derived from the name.
    """
    secret = get_settings().storage_secret.get_secret_value().encode()
    digest = hmac.new(secret, f'pseudonym:{examination_id}'.encode(), hashlib.sha256).hexdigest()
    return f'Patient {digest[:6].upper()}'


def patient_age(birth_date: dt.date, on: dt.date) -> str:
    """Return the age shown in place of the date of birth, such as "45 years" or "3 months" for an infant."""
    if on < birth_date:
        return ''
    return format_age(age_string(birth_date, on))


def translated_pseudonym(examination_id: str) -> str:
    """Return `pseudonym` in the current language, for texts that are not shared between readers, such as a PDF."""
    return _('Patient {code}', code=pseudonym(examination_id).removeprefix('Patient '))


def translated_patient_age(birth_date: dt.date, on: dt.date) -> str:
    """Return `patient_age` in the current language, such as "45 yaş" in Turkish, or '' before the birth date."""
    if on < birth_date:
        return ''
    match = AGE_PATTERN.fullmatch(age_string(birth_date, on))
    if match is None:
        return ''
    count, unit = int(match.group(1)), match.group(2)
    if unit == 'D':
        return ngettext('{count} day', '{count} days', count)
    if unit == 'W':
        return ngettext('{count} week', '{count} weeks', count)
    if unit == 'M':
        return ngettext('{count} month', '{count} months', count)
    return ngettext('{count} year', '{count} years', count)


def exam_uid_mapper(examination_id: str) -> UidMapper:
    """Return the UID mapping of one examination, keyed by the app's storage secret."""
    secret = get_settings().storage_secret.get_secret_value().encode()
    return uid_mapper(secret, f'deidentify:{examination_id}')


def get_global_default(*, actor: Actor) -> bool:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        return global_default(session)


def set_global_default(*, actor: Actor, enabled: bool) -> None:
    """Set whether doctors get de-identified images for examinations without their own choice."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        row = session.get(AppSetting, GLOBAL_KEY)
        if row is None:
            row = AppSetting(key=GLOBAL_KEY, value='false')
            session.add(row)
        previous = row.value == 'true'
        row.value = 'true' if enabled else 'false'
        row.updated_at = utcnow()
        row.updated_by_user_id = actor.user_id
        audit.record(session, actor, 'setting.changed', 'setting', GLOBAL_KEY, previous=previous, value=enabled)
    logger.info('de-identified review for doctors set to %s by user %s', enabled, actor.user_id)


def get_exam_policy(*, actor: Actor, examination_id: str) -> ExamPolicy:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        exam = session.get(Examination, examination_id)
        if exam is None:
            raise NotFoundError('Examination')
        default = global_default(session)
        return ExamPolicy(examination_id=exam.id, choice=exam.deidentify,
                          effective=exam.deidentify if exam.deidentify is not None else default)


def set_exam_choice(*, actor: Actor, examination_id: str, choice: bool | None) -> None:
    """Set de-identified review for one examination: True, False, or None to follow the app-wide default."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        exam = session.get(Examination, examination_id)
        if exam is None:
            raise NotFoundError('Examination')
        previous = exam.deidentify
        exam.deidentify = choice
        audit.record(session, actor, 'examination.deidentify_changed', 'examination', exam.id,
                     previous=previous, value=choice)
    logger.info('examination %s: de-identified review set to %s by user %s', examination_id, choice, actor.user_id)
