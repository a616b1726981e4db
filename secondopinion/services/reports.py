"""The doctor's report: drafts while under review, a frozen PDF once finalized, addenda as later versions."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select, update

from .. import i18n
from ..config import get_settings
from ..db import session_scope
from ..i18n import N_, _, ngettext
from ..models import (
    Comparison, Doctor, Examination, ExamStatus, Patient, Report, ReportAddendum, Role, Series, Study, StudyFile,
)
from ..models.base import utcnow
from . import audit, events, review_policy
from .access import deny, get_visible_exam
from .actors import Actor, require_role
from .errors import ConflictError, NotFoundError, ValidationError
from .key_images import RenderedKeyImage, render_for_pdf as render_key_images

logger = logging.getLogger(__name__)

SECTION_LIMIT = 20000
# Characters of the patient's first report that the PDF repeats; the full text stays in the app.
FIRST_REPORT_LIMIT = 4000


COMPARISON_LABELS = {
    Comparison.AGREES: N_('Agrees with the first report'),
    Comparison.PARTLY: N_('Partly agrees with the first report'),
    Comparison.DISAGREES: N_('Disagrees with the first report'),
}


@dataclass(frozen=True)
class AddendumView:
    number: int
    text: str
    doctor_name: str
    signed_at: datetime
    pdf_sha256: str


@dataclass(frozen=True)
class ReportView:
    examination_id: str
    technique: str
    findings: str
    impression: str
    recommendations: str
    comparison: str
    comparison_note: str
    is_final: bool
    doctor_name: str
    finalized_at: datetime | None
    pdf_sha256: str | None
    addenda: tuple[AddendumView, ...] = ()

    @property
    def version(self) -> int:
        """1 for the report as finalized, plus one per addendum."""
        return 1 + len(self.addenda)


def _own_case(session, actor: Actor, examination_id: str) -> Examination:  # noqa: ANN001
    require_role(actor, Role.DOCTOR)
    exam = get_visible_exam(session, actor, examination_id)
    if exam.doctor_id != actor.doctor_id:
        raise deny(session, actor, exam, 'not the accepting doctor')
    return exam


def get_report(*, actor: Actor, examination_id: str) -> ReportView | None:
    """Return the report: the accepting doctor and admins see drafts, the patient only a final one."""
    with session_scope() as session:
        return _report_view(session, actor, examination_id)


def view_report(*, actor: Actor, examination_id: str, page: str) -> ReportView | None:
    """Return the report for a page that shows it, and write `report.viewed` when a final report is shown.

    A draft is shown only to its own doctor, in the editor, and is not recorded as a view.
    """
    with session_scope() as session:
        view = _report_view(session, actor, examination_id)
        if view is not None and view.is_final:
            audit.record(session, actor, 'report.viewed', 'examination', view.examination_id, version=view.version,
                         page=page)
        return view


def _report_view(session, actor: Actor, examination_id: str) -> ReportView | None:  # noqa: ANN001
    exam = get_visible_exam(session, actor, examination_id)
    report = session.scalar(select(Report).where(Report.examination_id == exam.id))
    if report is None:
        return None
    if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
        return None
    if actor.role == Role.PATIENT and not report.is_final:
        return None
    doctor = session.get(Doctor, report.doctor_id)
    return ReportView(examination_id=exam.id, technique=report.technique, findings=report.findings,
                      impression=report.impression, recommendations=report.recommendations,
                      comparison=report.comparison, comparison_note=report.comparison_note,
                      is_final=report.is_final, doctor_name=doctor.user.full_name if doctor else '',
                      finalized_at=report.finalized_at, pdf_sha256=report.pdf_sha256,
                      addenda=tuple(_addendum_views(session, report)))


def _addendum_views(session, report: Report) -> list[AddendumView]:  # noqa: ANN001
    rows = session.scalars(select(ReportAddendum).where(ReportAddendum.report_id == report.id)
                           .order_by(ReportAddendum.number)).all()
    views = []
    for row in rows:
        doctor = session.get(Doctor, row.doctor_id)
        views.append(AddendumView(number=row.number, text=row.text, doctor_name=doctor.user.full_name if doctor else '',
                                  signed_at=row.signed_at, pdf_sha256=row.pdf_sha256))
    return views


# Report section -> the message when its text is longer than SECTION_LIMIT.
SECTION_TOO_LONG = {
    'technique': N_('Technique must have at most {limit} characters.'),
    'findings': N_('Findings must have at most {limit} characters.'),
    'impression': N_('Impression must have at most {limit} characters.'),
    'recommendations': N_('Recommendations must have at most {limit} characters.'),
    'comparison_note': N_('Comparison note must have at most {limit} characters.'),
}


def save_draft(*, actor: Actor, examination_id: str, findings: str, impression: str, recommendations: str,
               technique: str | None = None, comparison: str | None = None,
               comparison_note: str | None = None) -> None:
    """Save the report text of a case under review by the acting doctor. A section given as None keeps its text."""
    for name, value in (('technique', technique), ('findings', findings), ('impression', impression),
                        ('recommendations', recommendations), ('comparison_note', comparison_note)):
        if len(value or '') > SECTION_LIMIT:
            raise ValidationError(SECTION_TOO_LONG[name], field=name, limit=SECTION_LIMIT)
    if comparison is not None and comparison not in {item.value for item in Comparison}:
        raise ValidationError(N_('Comparison "{comparison}" is invalid: choose agrees, partly agrees or disagrees.'),
                              field='comparison', comparison=comparison)
    with session_scope() as session:
        exam = _own_case(session, actor, examination_id)
        if exam.status != ExamStatus.UNDER_REVIEW:
            raise ConflictError(N_('The report of this case is final and can no longer change.'))
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None:
            report = Report(examination_id=exam.id, doctor_id=actor.doctor_id)
            session.add(report)
        report.doctor_id = actor.doctor_id
        report.findings = findings or ''
        report.impression = impression or ''
        report.recommendations = recommendations or ''
        if technique is not None:
            report.technique = technique
        if comparison is not None:
            report.comparison = comparison
        if comparison_note is not None:
            report.comparison_note = comparison_note


def has_first_report(*, actor: Actor, examination_id: str) -> bool:
    """Tell whether the patient gave a first radiologist's report, as text or as a file."""
    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        return _has_first_report(session, exam)


def _has_first_report(session, exam: Examination) -> bool:  # noqa: ANN001
    if exam.prior_report_text.strip():
        return True
    return bool(session.scalar(select(func.count()).select_from(StudyFile).where(
        StudyFile.examination_id == exam.id, StudyFile.kind == 'prior_report')))


def _study_summary(session, exam: Examination) -> str:  # noqa: ANN001
    images = session.scalar(select(func.count()).select_from(StudyFile).where(
        StudyFile.examination_id == exam.id, StudyFile.kind == 'dicom')) or 0
    series = session.scalar(select(func.count()).select_from(Series).join(Study).where(
        Study.examination_id == exam.id)) or 0
    dates = sorted({s.study_date for s in exam.studies if s.study_date})
    parts = [ngettext('{count} series', '{count} series', series) + ', '
             + ngettext('{count} image', '{count} images', images)] if images else []
    if dates:
        parts.append(_('study date {dates}', dates=', '.join(f'{d[:4]}-{d[4:6]}-{d[6:]}' for d in dates)))
    if exam.links:
        parts.append(ngettext('{count} external image link', '{count} external image links', len(exam.links)))
    return '; '.join(parts) or _('no images')


def _first_report_note(prior_report_text: str) -> str:
    if not prior_report_text:
        return ''
    return _('The patient provided this first report, which the radiologist read:') + '\n' \
        + prior_report_text[:FIRST_REPORT_LIMIT]


def _comparison_text(report: Report) -> str:
    label = _(COMPARISON_LABELS[Comparison(report.comparison)]) if report.comparison else ''
    if not label:
        return ''
    return f'{label}: {report.comparison_note}' if report.comparison_note.strip() else f'{label}.'


def _pdf_data(session, exam: Examination, report: Report, signed_at: datetime,  # noqa: ANN001
              addenda: list[ReportAddendum],
              key_images: list[RenderedKeyImage]):  # noqa: ANN202 (a ReportPdfData)
    """Collect what the PDF prints: the report as finalized, and any addenda, which make it a later version.

    The labels and summaries are in the patient's language; the doctor's texts stay as written.
    """
    patient = session.get(Patient, exam.patient_id)
    assert patient is not None
    with i18n.use_language(patient.user.language):
        return _pdf_data_in_language(session, exam, report, signed_at, addenda, key_images, patient)


def _pdf_data_in_language(session, exam: Examination, report: Report, signed_at: datetime,  # noqa: ANN001
                          addenda: list[ReportAddendum], key_images: list[RenderedKeyImage],
                          patient: Patient):  # noqa: ANN202 (a ReportPdfData)
    from .report_pdf import PdfAddendum, PdfKeyImage, ReportPdfData

    doctor = session.get(Doctor, report.doctor_id)
    assert doctor is not None
    pdf_addenda = []
    for addendum in addenda:
        author = session.get(Doctor, addendum.doctor_id)
        pdf_addenda.append(PdfAddendum(number=addendum.number, text=addendum.text,
                                       doctor_name=author.user.full_name if author else '',
                                       signed_at=addendum.signed_at))
    return ReportPdfData(
        practice_name=get_settings().practice_name, report_id=str(report.id), examination_id=exam.id,
        patient_name=patient.user.full_name, patient_birth_date=patient.date_of_birth,
        modality=exam.modality, body_part=exam.body_part, clinical_question=exam.clinical_question,
        study_summary=_study_summary(session, exam), doctor_name=doctor.user.full_name,
        doctor_license=doctor.license_number, doctor_specialty=doctor.specialty,
        findings=report.findings, impression=report.impression, recommendations=report.recommendations,
        finalized_at=signed_at, original_report_note=_first_report_note(exam.prior_report_text),
        technique=report.technique, comparison=_comparison_text(report), version=1 + len(addenda),
        addenda=tuple(pdf_addenda), language=i18n.current_language(),
        key_images=tuple(PdfKeyImage(image=item.jpeg, label=f'{item.view.position_label}, {item.view.window_label}',
                                     caption=item.view.caption)
                         for item in key_images))


def finalize(*, actor: Actor, examination_id: str, findings: str, impression: str, recommendations: str,
             technique: str | None = None, comparison: str | None = None,
             comparison_note: str | None = None) -> None:
    """Freeze the report as a PDF, move the case to reported, record the earning and notify the patient."""
    from .notifications import notify_patient
    from .payments import record_doctor_earning
    from .report_pdf import render_report_pdf
    from .storage import get_storage

    if not (impression or '').strip():
        raise ValidationError(N_('Impression is missing: write the conclusion before finalizing.'), field='impression')
    if not (findings or '').strip():
        raise ValidationError(N_('Findings are missing: describe what you saw before finalizing.'), field='findings')
    save_draft(actor=actor, examination_id=examination_id, findings=findings, impression=impression,
               recommendations=recommendations, technique=technique, comparison=comparison,
               comparison_note=comparison_note)
    # Rendered before the transaction, because rendering reads the images in sessions of its own.
    key_images = render_key_images(actor=actor, examination_id=examination_id)

    storage = get_storage()
    with session_scope() as session:
        exam = _own_case(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        assert report is not None
        if not report.comparison and _has_first_report(session, exam):
            raise ValidationError(N_('Choose whether your opinion agrees, partly agrees or disagrees with the first '
                                     'report the patient uploaded.'), field='comparison')
        patient = session.get(Patient, exam.patient_id)
        assert patient is not None
        finalized_at = utcnow()
        pdf = render_report_pdf(_pdf_data(session, exam, report, finalized_at, [], key_images))
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
                raise ConflictError(N_('This case is no longer under your review.'))
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


def add_addendum(*, actor: Actor, examination_id: str, text: str) -> int:
    """Add a signed addendum to the acting doctor's finalized report and return the new version number.

    The addendum gets its own PDF (the report with every addendum so far); earlier PDFs are kept
    unchanged, and the patient is notified again.
    """
    from .notifications import notify_patient
    from .report_pdf import render_report_pdf
    from .storage import get_storage

    text = (text or '').strip()
    if not text:
        raise ValidationError(N_('The addendum is empty: write the correction or addition first.'), field='addendum')
    if len(text) > SECTION_LIMIT:
        raise ValidationError(N_('The addendum must have at most {limit} characters.'), field='addendum',
                              limit=SECTION_LIMIT)
    key_images = render_key_images(actor=actor, examination_id=examination_id)
    storage = get_storage()
    with session_scope() as session:
        exam = _own_case(session, actor, examination_id)
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None or not report.is_final or exam.status not in {ExamStatus.REPORTED, ExamStatus.COMPLETED}:
            raise ConflictError(N_('Only a finalized report can get an addendum.'))
        addenda = list(session.scalars(select(ReportAddendum).where(ReportAddendum.report_id == report.id)
                                       .order_by(ReportAddendum.number)))
        signed_at = utcnow()
        addendum = ReportAddendum(report_id=report.id, number=len(addenda) + 1, doctor_id=actor.doctor_id,
                                  text=text, signed_at=signed_at, pdf_key='', pdf_sha256='')
        pdf = render_report_pdf(_pdf_data(session, exam, report, report.finalized_at or signed_at,
                                          [*addenda, addendum], key_images))
        digest = hashlib.sha256(pdf).hexdigest()
        key = f'exams/{exam.id}/report-{report.id}-v{addendum.number + 1}-{digest[:12]}.pdf'
        addendum.pdf_key, addendum.pdf_sha256 = key, digest
        storage.save(key, [pdf])
        try:
            session.add(addendum)
            session.flush()  # the unique (report, number) constraint stops two addenda racing for one number
            patient = session.get(Patient, exam.patient_id)
            assert patient is not None
            notify_patient(session, patient_user_id=patient.user_id, examination_id=exam.id,
                           template='report_amended',
                           context={'patient_name': patient.user.full_name, 'examination_id': exam.id,
                                    'version': str(addendum.number + 1)},
                           attachment_key=key,
                           attachment_name=f'second-opinion-report-{exam.id[:8]}-v{addendum.number + 1}.pdf')
            audit.record(session, actor, 'report.addendum', 'examination', exam.id, number=addendum.number,
                         sha256=digest)
            session.commit()
        except Exception:
            storage.delete(key)
            raise
        version = addendum.number + 1
    logger.info('addendum %s added to the report of examination %s by doctor %s', version - 1, examination_id,
                actor.doctor_id)
    return version


def open_report_pdf(*, actor: Actor, examination_id: str, version: int | None = None) -> tuple[str, Iterator[bytes]]:
    """Return the file name and content of a final report PDF, the latest version unless `version` is given."""
    from .storage import get_storage

    with session_scope() as session:
        exam = get_visible_exam(session, actor, examination_id)
        if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
            raise deny(session, actor, exam, 'only the accepting doctor may download the report')
        report = session.scalar(select(Report).where(Report.examination_id == exam.id))
        if report is None or not report.is_final or not report.pdf_key:
            raise NotFoundError(N_('Report'))
        keys = [report.pdf_key, *session.scalars(select(ReportAddendum.pdf_key)
                                                  .where(ReportAddendum.report_id == report.id)
                                                  .order_by(ReportAddendum.number))]
        chosen = len(keys) if version is None else version
        if not 1 <= chosen <= len(keys):
            raise NotFoundError(N_('Report'))
        key = keys[chosen - 1]
        deidentified = review_policy.applies(session, actor, exam)
        # The version is the one chosen: 1 for the report as finalized, higher for a version with addenda.
        audit.record(session, actor, 'report.downloaded', 'examination', exam.id, version=chosen,
                     deidentified=deidentified)
        if deidentified:
            pdf = _deidentified_pdf(session, actor, exam, report, chosen)
    suffix = '' if chosen == 1 else f'-v{chosen}'
    name = f'second-opinion-report-{examination_id[:8]}{suffix}.pdf'
    if deidentified:
        return name, iter([pdf])
    return name, get_storage().iter_chunks(key)


def _deidentified_pdf(session, actor: Actor, exam: Examination, report: Report,  # noqa: ANN001
                      version: int) -> bytes:
    """Render version `version` of the report again with the pseudonym and age in place of name and birth date.

    The patient's signed PDF in storage stays as it is. This copy is for the doctor in de-identified
    review, so its bytes differ from the stored PDF and from its SHA-256.
    """
    from .report_pdf import render_report_pdf

    addenda = list(session.scalars(select(ReportAddendum).where(ReportAddendum.report_id == report.id)
                                   .order_by(ReportAddendum.number)))[:version - 1]
    assert report.finalized_at is not None
    key_images = render_key_images(actor=actor, examination_id=exam.id)
    data = _pdf_data(session, exam, report, report.finalized_at, addenda, key_images)
    birth_date = data.patient_birth_date
    assert birth_date is not None
    # The labels are in the patient's language (see _pdf_data), so the values that replace name and birth date are too.
    with i18n.use_language(data.language):
        name = review_policy.translated_pseudonym(exam.id)
        age = review_policy.translated_patient_age(birth_date, report.finalized_at.date())
    return render_report_pdf(replace(data, patient_name=name, patient_birth_date=None, patient_age=age))
