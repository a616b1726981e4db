"""The doctor's report: drafts while under review, a frozen PDF once finalized."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from ..config import get_settings
from ..db import session_scope
from ..models import Doctor, Examination, ExamStatus, Patient, Report, Role, Series, Study, StudyFile
from ..models.base import utcnow
from . import audit, events
from .access import get_visible_exam
from .actors import Actor, require_role
from .errors import ConflictError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

SECTION_LIMIT = 20000
# Characters of the patient's first report that the PDF repeats; the full text stays in the app.
FIRST_REPORT_LIMIT = 4000


@dataclass(frozen=True)
class ReportView:
    examination_id: str
    findings: str
    impression: str
    recommendations: str
    is_final: bool
    doctor_name: str
    finalized_at: datetime | None
    pdf_sha256: str | None


def _own_case(session, actor: Actor, examination_id: str) -> Examination:  # noqa: ANN001
    require_role(actor, Role.DOCTOR)
    exam = get_visible_exam(session, actor, examination_id)
    if exam.doctor_id != actor.doctor_id:
        raise NotFoundError('Examination')
    return exam


def get_report(*, actor: Actor, examination_id: str) -> ReportView | None:
    """Return the report: the accepting doctor and admins see drafts, the patient only a final one."""
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None:
            return None
        if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            return None
        if actor.role == Role.PATIENT and not report.is_final:
            return None
        doctor = session.get(Doctor, report.doctor_id)
        return ReportView(examination_id=exam.id, findings=report.findings, impression=report.impression,
                          recommendations=report.recommendations, is_final=report.is_final,
                          doctor_name=doctor.user.full_name if doctor else '', finalized_at=report.finalized_at,
                          pdf_sha256=report.pdf_sha256)


def save_draft(*, actor: Actor, examination_id: str, findings: str, impression: str, recommendations: str) -> None:
    """Save the report text of a case under review by the acting doctor."""
    for name, value in (('findings', findings), ('impression', impression), ('recommendations', recommendations)):
        if len(value or '') > SECTION_LIMIT:
            raise ValidationError(f'{name.capitalize()} must have at most {SECTION_LIMIT} characters.', field=name)
    with session_scope() as session:
        exam = _own_case(session, actor, examination_id)
        if exam.status != ExamStatus.UNDER_REVIEW:
            raise ConflictError('The report of this case is final and can no longer change.')
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None:
            report = Report(examination_id=exam.id, doctor_id=actor.doctor_id)
            session.add(report)
        report.doctor_id = actor.doctor_id
        report.findings = findings or ''
        report.impression = impression or ''
        report.recommendations = recommendations or ''


def _study_summary(session, exam: Examination) -> str:  # noqa: ANN001
    images = session.scalar(select(func.count()).select_from(StudyFile).where(
        StudyFile.examination_id == exam.id, StudyFile.kind == 'dicom')) or 0
    series = session.scalar(select(func.count()).select_from(Series).join(Study).where(
        Study.examination_id == exam.id)) or 0
    dates = sorted({s.study_date for s in exam.studies if s.study_date})
    parts = [f'{series} series, {images} images'] if images else []
    if dates:
        parts.append('study date ' + ', '.join(f'{d[:4]}-{d[4:6]}-{d[6:]}' for d in dates))
    if exam.links:
        parts.append(f'{len(exam.links)} external image link(s)')
    return '; '.join(parts) or 'no images'


def _first_report_note(prior_report_text: str) -> str:
    if not prior_report_text:
        return ''
    return 'The patient provided this first report, which the radiologist read:\n' + prior_report_text[:FIRST_REPORT_LIMIT]


def finalize(*, actor: Actor, examination_id: str, findings: str, impression: str, recommendations: str) -> None:
    """Freeze the report as a PDF, move the case to reported, record the earning and notify the patient."""
    from .notifications import notify_patient
    from .payments import record_doctor_earning
    from .report_pdf import ReportPdfData, render_report_pdf
    from .storage import get_storage

    if not (impression or '').strip():
        raise ValidationError('Impression is missing: write the conclusion before finalizing.', field='impression')
    if not (findings or '').strip():
        raise ValidationError('Findings are missing: describe what you saw before finalizing.', field='findings')
    save_draft(actor=actor, examination_id=examination_id, findings=findings, impression=impression,
               recommendations=recommendations)

    settings = get_settings()
    storage = get_storage()
    with session_scope() as session:
        exam = _own_case(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        assert report is not None
        patient = session.get(Patient, exam.patient_id)
        doctor = session.get(Doctor, actor.doctor_id)
        assert patient is not None and doctor is not None
        finalized_at = utcnow()
        pdf = render_report_pdf(ReportPdfData(
            practice_name=settings.practice_name, report_id=str(report.id), examination_id=exam.id,
            patient_name=patient.user.full_name, patient_birth_date=patient.date_of_birth,
            modality=exam.modality, body_part=exam.body_part, clinical_question=exam.clinical_question,
            study_summary=_study_summary(session, exam), doctor_name=doctor.user.full_name,
            doctor_license=doctor.license_number, doctor_specialty=doctor.specialty,
            findings=report.findings, impression=report.impression, recommendations=report.recommendations,
            finalized_at=finalized_at,
            original_report_note=_first_report_note(exam.prior_report_text)))
        digest = hashlib.sha256(pdf).hexdigest()
        key = f'exams/{exam.id}/report-{report.id}-{digest[:12]}.pdf'
        # The PDF is stored before the rows commit, so a committed report always has its file.
        storage.save(key, [pdf])
        try:
            moved = session.execute(update(Examination).where(
                Examination.id == exam.id, Examination.status == ExamStatus.UNDER_REVIEW,
                Examination.doctor_id == actor.doctor_id).values(status=ExamStatus.REPORTED,
                                                                  reported_at=finalized_at))
            if moved.rowcount != 1:
                raise ConflictError('This case is no longer under your review.')
            report.is_final = True
            report.finalized_at = finalized_at
            report.pdf_key = key
            report.pdf_sha256 = digest
            session.refresh(exam)
            record_doctor_earning(session, exam)
            notify_patient(session, patient_user_id=patient.user_id, examination_id=exam.id, template='report_ready',
                           context={'patient_name': patient.user.full_name, 'examination_id': exam.id},
                           attachment_key=key, attachment_name=f'second-opinion-report-{exam.id[:8]}.pdf')
            audit.record(session, actor, 'report.finalized', 'examination', exam.id, sha256=digest)
            session.commit()
        except Exception:
            storage.delete(key)
            raise
        logger.info('report %s finalized for examination %s by doctor %s', report.id, exam.id, actor.doctor_id)
    events.publish(events.ExamChanged(examination_id=examination_id, status=ExamStatus.REPORTED,
                                      doctor_id=actor.doctor_id))


def open_report_pdf(*, actor: Actor, examination_id: str) -> tuple[str, Iterator[bytes]]:
    """Return the file name and content of the final report PDF, for actors who may view the examination."""
    from .storage import get_storage

    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            raise NotFoundError('Report')
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None or not report.is_final or not report.pdf_key:
            raise NotFoundError('Report')
        key = report.pdf_key
        audit.record(session, actor, 'report.downloaded', 'examination', exam.id)
    return f'second-opinion-report-{examination_id[:8]}.pdf', get_storage().iter_chunks(key)
