"""Privacy requests of a patient: download all their data, and delete their account.

The export is a zip generated while it streams: the rows are read once before the first byte, and
each stored file is then copied one chunk at a time, so memory use does not grow with the study.

Deletion removes the patient's personal data and medical records, and keeps what the practice's
accounts need. See `delete_patient_account` for the exact list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import (
    AccountToken, Doctor, ExamQuestion, Examination, ExamStatus, ExternalIdentity, ImageLink, Income, IncomeKind, Notification,
    Patient, Payment, Report, ReportAddendum, ReportKeyImage, Role, Series, SignInAttempt, Study, StudyFile, User, UserSession,
)
from ..models.audit import AuditEvent
from ..models.base import utcnow
from . import audit, events, questions, sessions, throttle, uploads
from .accounts import password_context
from .actors import Actor
from ..i18n import N_
from .errors import ConflictError, NotFoundError, ValidationError
from .examinations import STATUS_LABELS, cancel_in_session
from .notifications import enqueue_email
from .payments import format_money
from .storage import BlobStorage, get_storage

# The zip helpers of the image download, shared so both downloads name folders and stream alike.
from .studies import DICOM_KIND, PRIOR_REPORT_KIND, _archive_entries, _safe_name, _unique_name, _ZipSink

logger = logging.getLogger(__name__)

DELETED_NAME = 'Deleted patient'
# patients.date_of_birth is NOT NULL, so a deleted patient's date of birth becomes this fixed date,
# which no real patient of the practice has.
DELETED_BIRTH_DATE = date(1900, 1, 1)
# Examination states that are cancelled before the account goes. A paid, pending one is refunded.
CANCELLED_ON_DELETION = (ExamStatus.DRAFT, ExamStatus.AWAITING_PAYMENT, ExamStatus.PENDING)

README_TEXT = """\
Your data from {practice}
=========================

This archive contains everything the practice stores about you, as of {created} (UTC).

account.json
    Your profile (name, email address, phone number, date of birth), how you chose to be notified,
    the Microsoft or Google accounts linked to your sign-in, your sign-in sessions and the emails
    and text messages we sent you.

examinations.json
    Every examination with its clinical details, its timeline, its payments and refunds, and the
    text of its report with every addendum. "folder" names the examination's folder below.

examinations/<date>_<id>/
    images/         the DICOM images you uploaded, one folder per study and series
    prior-reports/  the reports of your first radiologist that you uploaded
    reports/        the second opinion report as PDF, one file per version (v2 and later
                    contain the addenda)

DICOM files open in any DICOM viewer, for example the one your hospital gave you on CD.
{missing}"""


# --- export ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ExportFile:
    """One stored file to copy into the export zip."""

    name: str
    key: str
    sha256: str | None


@dataclass
class _Export:
    account: dict[str, Any]
    examinations: list[dict[str, Any]] = field(default_factory=list)
    files: list[_ExportFile] = field(default_factory=list)


def export_patient_data(*, actor: Actor) -> tuple[str, Iterator[bytes]]:
    """Return the file name and a generator of a zip with every piece of data stored about the acting patient.

    Only patients have such an export; anyone else gets NotFoundError. The rows are read and the
    audit event `privacy.exported` written before the first byte.
    """
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise NotFoundError(N_('Export'))
    with session_scope() as session:
        user, patient = _load_patient(session, actor)
        export = _Export(account=_account_data(session, user, patient))
        exams = session.scalars(select(Examination).where(Examination.patient_id == patient.id)
                                .order_by(Examination.created_at, Examination.id)).all()
        used_folders: set[str] = set()
        for exam in exams:
            folder = _unique_name(f'examinations/{exam.created_at:%Y-%m-%d}_{exam.id[:8]}', used_folders)
            data, files = _examination_data(session, exam, folder)
            export.examinations.append(data)
            export.files.extend(files)
        audit.record(session, actor, 'privacy.exported', 'user', user.id, examinations=len(exams),
                     files=len(export.files))
    logger.info('data export of user %s started: %d examinations, %d files', actor.user_id,
                len(export.examinations), len(export.files))
    return f'my-data-{utcnow():%Y-%m-%d}.zip', _generate_export(get_storage(), actor.user_id, export)


def _load_patient(session: Session, actor: Actor) -> tuple[User, Patient]:
    user = session.get(User, actor.user_id)
    patient = session.get(Patient, actor.patient_id)
    if user is None or patient is None or patient.user_id != user.id or user.deleted_at is not None:
        raise NotFoundError(N_('Account'))
    return user, patient


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _account_data(session: Session, user: User, patient: Patient) -> dict[str, Any]:
    identities = session.scalars(select(ExternalIdentity).where(ExternalIdentity.user_id == user.id)
                                 .order_by(ExternalIdentity.id)).all()
    user_sessions = session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                              UserSession.activated_at.is_not(None))
                                    .order_by(UserSession.id)).all()
    messages = session.scalars(select(Notification).where(Notification.user_id == user.id)
                               .order_by(Notification.id)).all()
    return {
        'profile': {
            'full_name': user.full_name, 'email': user.email, 'email_verified_at': _iso(user.email_verified_at),
            'phone': user.phone, 'date_of_birth': _iso(patient.date_of_birth), 'registered_at': _iso(user.created_at),
            'last_sign_in_at': _iso(user.last_login_at), 'password_changed_at': _iso(user.password_changed_at),
            'two_factor_enabled': user.totp_enabled_at is not None,
        },
        'notification_preferences': {'email': patient.notify_email, 'sms': patient.notify_sms},
        'linked_sign_in_providers': [
            {'provider': row.provider, 'account_id': row.subject, 'linked_at': _iso(row.created_at),
             'last_used_at': _iso(row.last_used_at)} for row in identities],
        'sign_in_sessions': [
            {'started_at': _iso(row.activated_at), 'last_seen_at': _iso(row.last_seen_at),
             'ended_at': _iso(row.revoked_at), 'end_reason': row.revoke_reason, 'method': row.method,
             'client_address': row.client_address, 'browser': row.user_agent} for row in user_sessions],
        'messages_sent_to_you': [
            {'created_at': _iso(row.created_at), 'channel': row.channel, 'to': row.recipient, 'subject': row.subject,
             'status': row.status, 'sent_at': _iso(row.sent_at), 'examination_id': row.examination_id}
            for row in messages],
    }


def _examination_data(session: Session, exam: Examination, folder: str) -> tuple[dict[str, Any], list[_ExportFile]]:
    """Return the examination's entry of examinations.json and the stored files that go into its folder."""
    files: list[_ExportFile] = []
    used: set[str] = set()

    image_rows = session.execute(
        select(Study.id, Study.study_date, Study.description, Series.id, Series.number, Series.description,
               StudyFile.id, StudyFile.instance_number, StudyFile.storage_key, StudyFile.size_bytes,
               StudyFile.sha256)
        .join(Series, StudyFile.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .where(StudyFile.examination_id == exam.id, StudyFile.kind == DICOM_KIND)).all()
    for entry in _archive_entries(list(image_rows)):
        files.append(_ExportFile(name=f'{folder}/images/{entry.name}', key=entry.key, sha256=entry.sha256))

    prior_reports = []
    for row in session.scalars(select(StudyFile).where(StudyFile.examination_id == exam.id,
                                                       StudyFile.kind == PRIOR_REPORT_KIND).order_by(StudyFile.id)):
        # The stored key ends in the extension of the detected file type (.pdf, .png or .jpg).
        stem = _safe_name(PurePosixPath(row.original_name).stem) or 'report'
        name = _unique_name(f'{folder}/prior-reports/{stem}', used, suffix=PurePosixPath(row.storage_key).suffix)
        files.append(_ExportFile(name=name, key=row.storage_key, sha256=row.sha256))
        prior_reports.append({'file': name, 'uploaded_name': row.original_name, 'uploaded_at': _iso(row.uploaded_at),
                              'size_bytes': row.size_bytes})

    studies = [{'date': study.study_date, 'description': study.description, 'modality': study.modality,
                'patient_name_in_images': study.patient_name, 'patient_sex_in_images': study.patient_sex,
                'patient_age_in_images': study.patient_age,
                'series': [{'number': series.number, 'modality': series.modality, 'description': series.description,
                            'body_part': series.body_part, 'images': len(series.files)} for series in study.series]}
               for study in exam.studies]

    report_data, report_files = _report_data(session, exam, folder)
    files.extend(report_files)
    data = {
        'id': exam.id, 'folder': folder, 'status': STATUS_LABELS[ExamStatus(exam.status)],
        'type': exam.modality, 'body_part': exam.body_part, 'urgency': exam.urgency,
        'clinical_question': exam.clinical_question, 'history': exam.history,
        'first_report_text': exam.prior_report_text,
        'price': format_money(exam.price_cents, exam.currency) if exam.price_cents is not None else None,
        'timeline': _timeline(session, exam), 'links_to_images': [
            {'url': link.url, 'note': link.note} for link in exam.links],
        'studies': studies, 'prior_report_files': prior_reports,
        'payments': _payments_data(session, exam), 'report': report_data,
        'questions': questions.export_rows(session, exam.id),
    }
    return data, files


def _timeline(session: Session, exam: Examination) -> list[dict[str, Any]]:
    """List the examination's events from the audit log: time and action only.

    Who acted and from which address stays out, because that is data about staff, not about the patient.
    """
    rows = session.execute(select(AuditEvent.at, AuditEvent.action).where(
        AuditEvent.object_type == 'examination', AuditEvent.object_id == exam.id).order_by(AuditEvent.id)).all()
    return [{'at': _iso(at), 'event': action} for at, action in rows]


def _payments_data(session: Session, exam: Examination) -> list[dict[str, Any]]:
    payments = session.scalars(select(Payment).where(Payment.examination_id == exam.id).order_by(Payment.id)).all()
    refunds = {row.payment_id: row for row in session.scalars(select(Income).where(
        Income.examination_id == exam.id, Income.kind == IncomeKind.REFUND))}
    result = []
    for payment in payments:
        refund = refunds.get(payment.id)
        result.append({'amount': format_money(payment.amount_cents, payment.currency), 'status': payment.status,
                       'provider': payment.provider, 'started_at': _iso(payment.created_at),
                       'paid_at': _iso(payment.succeeded_at),
                       'refund': None if refund is None else {
                           'amount': format_money(-refund.amount_cents, refund.currency),
                           'refunded_at': _iso(refund.created_at)}})
    return result


def _report_data(session: Session, exam: Examination, folder: str) -> tuple[dict[str, Any] | None, list[_ExportFile]]:
    """Return the final report with its addenda and PDF files; a draft report is the doctor's and stays out."""
    report = session.scalar(select(Report).where(Report.examination_id == exam.id))
    if report is None or not report.is_final:
        return None, []
    files = []
    if report.pdf_key:
        files.append(_ExportFile(name=f'{folder}/reports/second-opinion-report-v1.pdf', key=report.pdf_key,
                                 sha256=report.pdf_sha256))
    addenda = []
    for row in session.scalars(select(ReportAddendum).where(ReportAddendum.report_id == report.id)
                               .order_by(ReportAddendum.number)):
        name = f'{folder}/reports/second-opinion-report-v{row.number + 1}.pdf'
        files.append(_ExportFile(name=name, key=row.pdf_key, sha256=row.pdf_sha256))
        addenda.append({'version': row.number + 1, 'text': row.text, 'doctor': _doctor_name(session, row.doctor_id),
                        'signed_at': _iso(row.signed_at), 'pdf': name})
    data = {'doctor': _doctor_name(session, report.doctor_id), 'finalized_at': _iso(report.finalized_at),
            'technique': report.technique, 'comparison_with_first_report': report.comparison,
            'comparison_note': report.comparison_note, 'findings': report.findings, 'impression': report.impression,
            'recommendations': report.recommendations, 'pdf': files[0].name if report.pdf_key else None,
            'addenda': addenda,
            'key_images': [{'series_instance_uid': uid, 'slice': index + 1, 'window_center': center,
                            'window_width': width, 'caption': caption}
                           for uid, index, center, width, caption in session.execute(
                               select(Series.series_instance_uid, ReportKeyImage.slice_index,
                                      ReportKeyImage.window_center, ReportKeyImage.window_width,
                                      ReportKeyImage.caption)
                               .join(Series, Series.id == ReportKeyImage.series_id)
                               .where(ReportKeyImage.report_id == report.id)
                               .order_by(ReportKeyImage.added_at, ReportKeyImage.id))]}
    return data, files


def _doctor_name(session: Session, doctor_id: int) -> str:
    doctor = session.get(Doctor, doctor_id)
    return doctor.user.full_name if doctor else ''


def _generate_export(storage: BlobStorage, user_id: int, export: _Export) -> Iterator[bytes]:
    sink = _ZipSink()
    problems: list[str] = []
    # The sink cannot seek, so zipfile writes sizes and CRC after each entry in a data descriptor.
    archive = zipfile.ZipFile(sink, mode='w', compression=zipfile.ZIP_DEFLATED, allowZip64=True)  # type: ignore[arg-type]
    with archive:
        archive.writestr('account.json', _json(export.account))
        archive.writestr('examinations.json', _json(export.examinations))
        yield from sink.drain()
        for item in export.files:
            yield from _copy_blob(archive, sink, storage, item, problems, user_id)
        missing = ''
        if problems:
            missing = ('\nSome stored files could not be read, so they are missing or damaged in this archive. '
                       'Please tell the practice:\n' + ''.join(f'    {line}\n' for line in problems))
        archive.writestr('README.txt', README_TEXT.format(practice=get_settings().practice_name,
                                                          created=f'{utcnow():%Y-%m-%d %H:%M}', missing=missing))
    yield from sink.drain()
    logger.info('data export of user %s sent: %d files, %d unreadable', user_id, len(export.files), len(problems))


def _copy_blob(archive: zipfile.ZipFile, sink: _ZipSink, storage: BlobStorage, item: _ExportFile,
               problems: list[str], user_id: int) -> Iterator[bytes]:
    """Copy one stored file into the archive, uncompressed; a missing or damaged file is noted in `problems`."""
    try:
        # The first chunk is read before the entry starts, so a missing blob leaves no empty entry behind.
        chunks = storage.iter_chunks(item.key)
        first = next(chunks, b'')
    except FileNotFoundError:
        logger.error('data export of user %s: blob %s is missing', user_id, item.key)
        problems.append(f'{item.name}: missing')
        return
    info = zipfile.ZipInfo(item.name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_STORED
    digest = hashlib.sha256()
    with archive.open(info, mode='w') as target:
        for chunk in _prepend(first, chunks):
            digest.update(chunk)
            target.write(chunk)
            yield from sink.drain()
    if item.sha256 and digest.hexdigest() != item.sha256:
        logger.error('data export of user %s: blob %s does not match its SHA-256', user_id, item.key)
        problems.append(f'{item.name}: damaged (it differs from the file as it was stored)')
    yield from sink.drain()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + '\n'


# --- deletion --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionResult:
    cancelled: tuple[str, ...]
    refunded: tuple[str, ...]
    files_deleted: int
    files_not_deleted: int


def delete_patient_account(*, actor: Actor, password: str) -> DeletionResult:
    """Delete the acting patient's account after checking their password again.

    Rejected while a doctor reviews one of the examinations. Otherwise, in one transaction,
    examinations still in draft, awaiting payment or pending are cancelled. A pending one is paid,
    so it is refunded through the payment gateway. Then the patient's personal data and medical
    records are removed:

    - studies, series, study files (images and prior reports) and image links: rows deleted;
    - reports and addenda: rows deleted. They are medical records that a practice may otherwise
      keep, but the patient asked for the deletion of their personal data, and a report without
      its patient is of no use to anyone;
    - examinations: the rows stay for the ledger, with body part, clinical question, history and
      first report text blanked; type, urgency, price, status and times stay;
    - the outbox rows addressed to the patient, linked sign-in providers, account links (tokens)
      and the sign-in counter of the email address: deleted;
    - sessions: ended, with their client address and browser blanked;
    - the user row: kept for the ledger and the audit log with every personal field replaced
      (`deleted_at` set, `deleted-<id>@invalid`, "Deleted patient", no phone, password or second
      factor, inactive), and the date of birth set to DELETED_BIRTH_DATE.

    Payments and incomes keep their amounts and examination ids, so the accounts still add up; audit
    events stay, as they contain ids and no names. A confirmation email to the old address is queued
    in the same transaction; the outbox erases its recipient once it was sent (or finally failed).
    The stored files, and the staged files of unfinished uploads, are deleted after the commit. A
    stored file that cannot be deleted is logged with its key and stays in storage.

    NOTE: the refunds call the payment gateway inside the transaction, as `examinations.cancel`
    does. When a later step fails, the transaction rolls back but a refund already made stays made.
    Without an SMTP server, sent emails are .eml files in the outbox folder; the patient's are deleted
    after the commit as well.
    """
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise NotFoundError(N_('Account'))
    checked_hash = _check_password(actor, password)

    with session_scope() as session:
        user = session.scalar(select(User).where(User.id == actor.user_id).with_for_update())
        patient = session.get(Patient, actor.patient_id)
        if user is None or patient is None or patient.user_id != user.id or user.deleted_at is not None:
            raise NotFoundError(N_('Account'))
        if user.password_hash != checked_hash:
            raise ConflictError(N_('Your password changed a moment ago. Enter your new password to delete your '
                                   'account.'))
        exams = session.scalars(select(Examination).where(Examination.patient_id == patient.id)
                                .order_by(Examination.created_at).with_for_update()).all()
        _reject_while_under_review(exams)

        cancelled, refunded = _cancel_open_examinations(session, actor, exams)
        refund_lines = _refund_lines(session, refunded)
        exam_ids = [exam.id for exam in exams]
        sent_ids = list(session.scalars(select(Notification.id).where(
            or_(Notification.user_id == user.id, Notification.examination_id.in_(exam_ids)))))
        blob_keys = _delete_medical_records(session, exams)
        ended = _remove_account_data(session, user)
        enqueue_email(session, user_id=user.id, examination_id=None, recipient=user.email,
                      template='account_deleted',
                      context={'deleted_on': utcnow().date().isoformat(), 'refunds': '; '.join(refund_lines)})
        _anonymize_user(user, patient)
        audit.record(session, actor, 'privacy.account_deleted', 'user', user.id, examinations=exam_ids,
                     cancelled=cancelled, refunded=refunded, files=len(blob_keys))
        logger.info('account of user %s deleted: %d examinations, %d cancelled, %d refunded, %d files',
                    user.id, len(exam_ids), len(cancelled), len(refunded), len(blob_keys))

    sessions.announce_ended(ended)
    for exam_id in cancelled:
        events.publish(events.ExamChanged(examination_id=exam_id, status=ExamStatus.CANCELLED, doctor_id=None))
    failures = _delete_blobs(get_storage(), blob_keys, actor.user_id)
    uploads.discard_uploads_of_user(actor.user_id)
    _delete_outbox_files(sent_ids, actor.user_id)
    return DeletionResult(cancelled=tuple(cancelled), refunded=tuple(refunded),
                          files_deleted=len(blob_keys) - failures, files_not_deleted=failures)


def _delete_outbox_files(notification_ids: list[int], user_id: int) -> None:
    """Delete the .eml files that the outbox folder holds for these messages (named `<time>-<id>.eml`)."""
    folder = get_settings().outbox_dir
    if not notification_ids or not folder.is_dir():
        return
    wanted = {f'-{notification_id}.eml' for notification_id in notification_ids}
    removed = 0
    for path in folder.glob('*.eml'):
        if path.name[path.name.rfind('-'):] in wanted:
            try:
                path.unlink()
                removed += 1
            except OSError as error:
                logger.error('outbox file %s of deleted user %s could not be deleted: %s', path.name, user_id, error)
    logger.info('deleted %d outbox file(s) of deleted user %s', removed, user_id)


def _check_password(actor: Actor, password: str) -> str:
    """Verify the password outside any transaction (argon2 takes a while) and return the hash it matched."""
    if not password:
        raise ValidationError(N_('Password is missing. Enter the password you sign in with to confirm the deletion.'),
                              field='password')
    with session_scope() as session:
        password_hash = session.scalar(select(User.password_hash).where(User.id == actor.user_id))
    if not password_hash:
        raise ValidationError(N_('Your account has no password, so the deletion cannot be confirmed here. '
                                 'Contact the practice to delete your account.'), field='password')
    if not password_context.verify(password, password_hash):
        audit.record_now(actor, 'privacy.deletion_refused', 'user', actor.user_id, reason='wrong password')
        logger.info('account deletion of user %s rejected: wrong password', actor.user_id)
        raise ValidationError(N_('Password is incorrect. Enter the password you sign in with.'), field='password')
    return password_hash


def _reject_while_under_review(exams: Iterable[Examination]) -> None:
    reviewed = [exam.id for exam in exams if exam.status == ExamStatus.UNDER_REVIEW]
    if reviewed:
        logger.info('account deletion rejected: examination(s) %s under review', ', '.join(reviewed))
        raise ConflictError(
            N_('A radiologist is working on your examination {examination} right now, so your account cannot be '
               'deleted yet. Wait for the report, or ask the practice to cancel the examination, and then try '
               'again.'), examination=reviewed[0][:8])


def _cancel_open_examinations(session: Session, actor: Actor,
                              exams: Iterable[Examination]) -> tuple[list[str], list[str]]:
    cancelled, refunded = [], []
    for exam in exams:
        if exam.status not in CANCELLED_ON_DELETION:
            continue
        if exam.status == ExamStatus.PENDING:
            refunded.append(exam.id)
        cancel_in_session(session, actor, exam, reason='The patient deleted their account.')
        cancelled.append(exam.id)
    return cancelled, refunded


def _refund_lines(session: Session, refunded: list[str]) -> list[str]:
    """Describe each refund for the confirmation email, such as "120.00 CHF for examination 3f2a9c1b"."""
    if not refunded:
        return []
    session.flush()
    lines = []
    for exam_id, cents, currency in session.execute(
            select(Income.examination_id, Income.amount_cents, Income.currency)
            .where(Income.examination_id.in_(refunded), Income.kind == IncomeKind.REFUND)):
        lines.append(f'{format_money(-cents, currency)} for examination {exam_id[:8]}')
    return lines


def _delete_medical_records(session: Session, exams: list[Examination]) -> list[str]:
    """Delete images, prior reports and reports, blank the clinical text, and return the blob keys to delete."""
    exam_ids = [exam.id for exam in exams]
    if not exam_ids:
        return []
    study_ids = select(Study.id).where(Study.examination_id.in_(exam_ids))
    report_ids = select(Report.id).where(Report.examination_id.in_(exam_ids))
    keys = list(session.scalars(select(StudyFile.storage_key).where(StudyFile.examination_id.in_(exam_ids))))
    keys += session.scalars(select(Series.thumbnail_key).where(Series.study_id.in_(study_ids),
                                                               Series.thumbnail_key.is_not(None)))
    keys += session.scalars(select(Report.pdf_key).where(Report.examination_id.in_(exam_ids),
                                                         Report.pdf_key.is_not(None)))
    keys += [key for key in session.scalars(select(ReportAddendum.pdf_key)
                                            .where(ReportAddendum.report_id.in_(report_ids))) if key]

    # Outbox rows of these examinations may name a report PDF as attachment, so they go first.
    session.execute(delete(Notification).where(Notification.examination_id.in_(exam_ids)))
    session.execute(delete(ReportAddendum).where(ReportAddendum.report_id.in_(report_ids)))
    session.execute(delete(ReportKeyImage).where(ReportKeyImage.report_id.in_(report_ids)))
    session.execute(delete(Report).where(Report.examination_id.in_(exam_ids)))
    session.execute(delete(StudyFile).where(StudyFile.examination_id.in_(exam_ids)))
    session.execute(delete(Series).where(Series.study_id.in_(study_ids)))
    session.execute(delete(Study).where(Study.examination_id.in_(exam_ids)))
    session.execute(delete(ImageLink).where(ImageLink.examination_id.in_(exam_ids)))
    session.execute(delete(ExamQuestion).where(ExamQuestion.examination_id.in_(exam_ids)))
    for exam in exams:
        exam.body_part = exam.clinical_question = exam.history = exam.prior_report_text = ''
    return keys


def _remove_account_data(session: Session, user: User) -> list[int]:
    """Delete the account's outbox rows, links, providers and sign-in counter, and end its sessions.

    Returns the ids of the ended sessions, to announce after the commit.
    """
    # Every outbox row to a patient carries their user id, so rows to others with the same phone stay.
    session.execute(delete(Notification).where(Notification.user_id == user.id))
    session.execute(delete(ExternalIdentity).where(ExternalIdentity.user_id == user.id))
    session.execute(delete(AccountToken).where(AccountToken.user_id == user.id))
    session.execute(delete(SignInAttempt).where(SignInAttempt.key_kind == throttle.ACCOUNT,
                                                SignInAttempt.key_hash == throttle.hash_key(user.email)))
    ended = sessions.end_for_user(session, user.id, reason=sessions.DELETED)
    session.execute(update(UserSession).where(UserSession.user_id == user.id)
                    .values(client_address=None, user_agent=None))
    return ended


def _anonymize_user(user: User, patient: Patient) -> None:
    user.email = f'deleted-{user.id}@invalid'
    user.full_name = DELETED_NAME
    user.phone = None
    user.password_hash = None
    user.login_provider = 'password'
    user.is_active = False
    user.deleted_at = utcnow()
    user.last_login_at = user.email_verified_at = user.password_changed_at = None
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    patient.date_of_birth = DELETED_BIRTH_DATE


def _delete_blobs(storage: BlobStorage, keys: list[str], user_id: int) -> int:
    """Delete the blobs one by one and return how many failed; every failure is logged with its key.

    NOTE: no job retries a failed deletion, because no row refers to the blob any more. An operator
    finds the keys in the log and deletes them by hand.
    """
    failures = 0
    for key in keys:
        try:
            storage.delete(key)
        except Exception as error:  # noqa: BLE001 (Azure raises its own errors; each key is logged and skipped)
            failures += 1
            logger.error('account deletion of user %s: blob %s could not be deleted: %s', user_id, key, error)
    logger.info('account deletion of user %s: %d of %d blobs deleted', user_id, len(keys) - failures, len(keys))
    return failures
