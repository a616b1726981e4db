"""Privacy requests: the patient's data export, and account deletion that keeps only the anonymized ledger."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import JSON, String, Text, cast, func, select

from secondopinion import db
from secondopinion.config import get_settings, reset_settings
from secondopinion.models import (
    AuditEvent, Base, Examination, ExamStatus, ExternalIdentity, Income, Notification, Patient, Payment,
    PaymentStatus, User, UserSession,
)
from secondopinion.services import (
    accounts, examinations, ledger, notifications, payments, privacy, reports, sessions, stripe_gateway, studies,
    uploads,
)
from secondopinion.services.errors import ConflictError, DomainError, NotFoundError, ValidationError
from tests.conftest import PASSWORD, open_session
from tests.fake_stripe import event, sign

from .dicom_files import pydicom_file
from .flow import paid, submitted

NAME = 'Zelda Quintessa Privatova'
EMAIL = 'zelda.privatova@example.org'
PHONE = '+41795550123'
NEEDLES = (NAME, 'Privatova', EMAIL, PHONE)
PDF = b'%PDF-1.4\n% first report of Zelda Quintessa Privatova\n%%EOF\n'


@dataclass(frozen=True)
class Case:
    patient: object
    other: object
    doctor: object
    reported: str
    pending: str
    draft: str
    awaiting: str
    others_exam: str


def _exam_with_image(patient, question: str) -> str:  # noqa: ANN001
    exam_id = examinations.create_draft(actor=patient)
    studies.add_files(actor=patient, examination_id=exam_id, files=[('CT_small.dcm', pydicom_file('CT_small.dcm'))])
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question=question, history='Smoker', prior_report_text='A 9 mm nodule.')
    return exam_id


def _pay(patient, exam_id: str) -> None:  # noqa: ANN001
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])


@pytest.fixture
def case(make_patient, make_doctor, tmp_path) -> Case:
    patient = make_patient(NAME, email=EMAIL, phone=PHONE)
    other = make_patient('Bob Otherperson', email='bob@example.org')
    doctor = make_doctor()

    reported = _exam_with_image(patient, f'{NAME} asks: is the nodule benign?')
    prior = tmp_path / 'first report.pdf'
    prior.write_bytes(PDF)
    studies.add_prior_report_file(actor=patient, examination_id=reported, filename='first report.pdf', path=prior)
    _pay(patient, reported)
    examinations.accept(actor=doctor, examination_id=reported)
    reports.finalize(actor=doctor, examination_id=reported, findings=f'Nodule of {NAME}, 6 mm.',
                     impression='Probably benign.', recommendations='CT in 12 months.', comparison='agrees')
    reports.add_addendum(actor=doctor, examination_id=reported, text='Measured again: 5 mm.')
    notifications.deliver_due()

    others_exam = _exam_with_image(other, 'Bob asks about his knee.')
    _pay(other, others_exam)
    with db.session_scope() as session:
        session.add(ExternalIdentity(user_id=patient.user_id, provider='google', subject='zelda-google-subject'))
    return Case(patient=patient, other=other, doctor=doctor, reported=reported, pending=paid(patient),
                draft=examinations.create_draft(actor=patient), awaiting=submitted(patient), others_exam=others_exam)


def _export(actor) -> zipfile.ZipFile:  # noqa: ANN001
    _name, chunks = privacy.export_patient_data(actor=actor)
    return zipfile.ZipFile(io.BytesIO(b''.join(chunks)))


def _blob_keys(exam_ids: list[str]) -> list[str]:
    """Every stored file of these examinations: images, thumbnails, prior reports and report PDFs."""
    root = get_settings().blob_dir
    return sorted(path.relative_to(root).as_posix() for exam_id in exam_ids
                  for path in (root / 'exams' / exam_id).rglob('*') if path.is_file())


def _text_hits(needles: tuple[str, ...]) -> list[str]:
    """Search every text and JSON column of every table; return `table.column: needle` for each match."""
    hits = []
    with db.session_scope() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | Text | JSON):
                    continue
                for needle in needles:
                    count = session.scalar(select(func.count()).select_from(table)
                                           .where(cast(column, Text).ilike(f'%{needle}%')))
                    if count:
                        hits.append(f'{table.name}.{column.name}: {needle}')
    return hits


def _income_rows() -> list[tuple]:
    with db.session_scope() as session:
        return [tuple(row) for row in session.execute(
            select(Income.id, Income.examination_id, Income.payment_id, Income.kind, Income.amount_cents)
            .order_by(Income.id))]


# --- export ----------------------------------------------------------------------------------------------------

def test_export_contains_own_data(case):
    archive = _export(case.patient)
    names = archive.namelist()
    account = json.loads(archive.read('account.json'))
    exams = {exam['id']: exam for exam in json.loads(archive.read('examinations.json'))}

    assert account['profile']['email'] == EMAIL
    assert account['profile']['phone'] == PHONE
    assert account['linked_sign_in_providers'][0]['provider'] == 'google'
    assert set(exams) == {case.reported, case.pending, case.draft, case.awaiting}
    reported = exams[case.reported]
    assert reported['clinical_question'] == f'{NAME} asks: is the nodule benign?'
    assert reported['report']['findings'] == f'Nodule of {NAME}, 6 mm.'
    assert reported['report']['addenda'][0]['text'] == 'Measured again: 5 mm.'
    assert [payment['status'] for payment in reported['payments']] == ['succeeded']
    assert 'examination.accepted' in [event['event'] for event in reported['timeline']]

    folder = reported['folder']
    images = [name for name in names if name.startswith(f'{folder}/images/') and name.endswith('.dcm')]
    assert len(images) == 1
    assert archive.read(images[0]) == pydicom_file('CT_small.dcm').read_bytes()
    assert archive.read(f'{folder}/reports/second-opinion-report-v1.pdf').startswith(b'%PDF')
    assert archive.read(f'{folder}/reports/second-opinion-report-v2.pdf').startswith(b'%PDF')
    assert archive.read(f'{folder}/prior-reports/first_report.pdf') == PDF
    assert 'README.txt' in names
    assert 'could not be read' not in archive.read('README.txt').decode()


def test_export_has_nothing_of_others(case):
    archive = _export(case.patient)
    everything = b''.join(archive.read(name) for name in archive.namelist() if name.endswith(('.json', '.txt')))
    assert case.others_exam.encode() not in everything
    assert b'Otherperson' not in everything
    assert b'knee' not in everything
    assert not [name for name in archive.namelist() if case.others_exam[:8] in name]


def test_export_is_audited(case):
    _export(case.patient)
    with db.session_scope() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(case.patient.user_id)))
        assert 'privacy.exported' in list(actions)


def test_export_refused_for_staff(case, admin):
    for actor in (case.doctor, admin):
        with pytest.raises(NotFoundError):
            privacy.export_patient_data(actor=actor)


def test_export_notes_missing_file(case):
    image = next(key for key in _blob_keys([case.reported]) if key.endswith('.dcm'))
    (get_settings().blob_dir / image).unlink()
    archive = _export(case.patient)
    readme = archive.read('README.txt').decode()
    assert 'could not be read' in readme
    assert 'missing' in readme
    assert any(name.endswith('second-opinion-report-v1.pdf') for name in archive.namelist())


# --- deletion --------------------------------------------------------------------------------------------------

def test_deletion_removes_blobs(case):
    own_keys = _blob_keys([case.reported, case.pending, case.draft, case.awaiting])
    others_keys = _blob_keys([case.others_exam])
    assert any(key.endswith('.pdf') for key in own_keys)

    result = privacy.delete_patient_account(actor=case.patient, password=PASSWORD)

    assert result.files_deleted == len(own_keys)
    assert result.files_not_deleted == 0
    assert _blob_keys([case.reported, case.pending, case.draft, case.awaiting]) == []
    assert _blob_keys([case.others_exam]) == others_keys


def test_deletion_leaves_no_personal_text(case):
    assert _text_hits(NEEDLES)
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)

    # Until the confirmation is sent, its outbox row is the one place that still has the address.
    # ('Privatova' matches the address too, because the search ignores letter case.)
    assert _text_hits(NEEDLES) == ['notifications.recipient: Privatova', f'notifications.recipient: {EMAIL}']
    notifications.deliver_due()
    assert _text_hits(NEEDLES) == []

    emails = list(get_settings().outbox_dir.glob('*.eml'))
    confirmation = [path.read_text() for path in emails if 'Your account was deleted' in path.read_text()]
    assert len(confirmation) == 1
    assert EMAIL in confirmation[0]
    assert 'Privatova' not in confirmation[0]
    # The emails written before (welcome, payment, report) went with the account.
    assert [path.name for path in emails if EMAIL in path.read_text() or 'Privatova' in path.read_text()] == \
        [path.name for path in emails if 'Your account was deleted' in path.read_text()]


def test_deletion_anonymizes_rows(case):
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)
    with db.session_scope() as session:
        user = session.get(User, case.patient.user_id)
        assert user.email == f'deleted-{user.id}@invalid'
        assert user.full_name == 'Deleted patient'
        assert (user.phone, user.password_hash, user.is_active) == (None, None, False)
        assert user.deleted_at is not None
        assert session.get(Patient, case.patient.patient_id).date_of_birth == privacy.DELETED_BIRTH_DATE
        for exam_id in (case.reported, case.pending):
            exam = session.get(Examination, exam_id)
            assert (exam.clinical_question, exam.history, exam.prior_report_text, exam.body_part) == ('', '', '', '')
            assert exam.price_cents is not None
        assert session.scalar(select(func.count()).select_from(ExternalIdentity)) == 0
        others = session.get(Examination, case.others_exam)
        assert others.clinical_question == 'Bob asks about his knee.'


def test_deletion_keeps_ledger(case):
    before = _income_rows()
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)
    after = _income_rows()

    # Every earlier row is unchanged; the only new rows reverse the pending examination's payment and fee.
    assert after[:len(before)] == before
    paid_rows = {row[3]: row[4] for row in before if row[1] == case.pending}
    new_rows = {row[3]: row[4] for row in after[len(before):] if row[1] == case.pending}
    assert len(after) - len(before) == 2
    assert new_rows == {'refund': -paid_rows['payment'], 'platform_fee_reversal': -paid_rows['platform_fee']}


def test_deletion_without_open_exams_keeps_totals(make_patient, make_doctor, admin):
    patient, doctor = make_patient(NAME, email=EMAIL, phone=PHONE), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Normal.', impression='Normal.',
                     recommendations='')
    totals = ledger.monthly_totals(actor=admin)
    privacy.delete_patient_account(actor=patient, password=PASSWORD)
    assert ledger.monthly_totals(actor=admin) == totals


def test_pending_paid_exam_refunded(case):
    result = privacy.delete_patient_account(actor=case.patient, password=PASSWORD)

    assert result.refunded == (case.pending,)
    assert set(result.cancelled) == {case.pending, case.draft, case.awaiting}
    with db.session_scope() as session:
        assert session.get(Examination, case.pending).status == ExamStatus.CANCELLED
        assert session.get(Examination, case.reported).status == ExamStatus.COMPLETED
        statuses = dict(session.execute(select(Payment.examination_id, Payment.status)).all())
        body = session.scalar(select(Notification.body_text).where(Notification.template == 'account_deleted'))
    assert statuses[case.pending] == PaymentStatus.REFUNDED
    assert statuses[case.reported] == PaymentStatus.SUCCEEDED
    assert f'for examination {case.pending[:8]}' in body


def test_deleted_user_cannot_sign_in(case):
    token = open_session(case.patient.user_id)
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)

    with pytest.raises(ValidationError, match='Email or password is incorrect.'):
        accounts.authenticate(email=EMAIL, password=PASSWORD)
    assert sessions.resolve(token) is None
    with db.session_scope() as session:
        rows = session.scalars(select(UserSession).where(UserSession.user_id == case.patient.user_id)).all()
        assert rows
        assert all(row.revoked_at is not None for row in rows)
        assert {row.revoke_reason for row in rows} == {sessions.DELETED}


def test_email_free_again_after_deletion(case):
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)
    info = accounts.register_patient(full_name='Zelda New', email=EMAIL, password=PASSWORD,
                                     date_of_birth=date(1980, 5, 17), phone='')
    assert info.user_id != case.patient.user_id


def test_refused_while_under_review(make_patient, make_doctor):
    patient, doctor = make_patient(NAME, email=EMAIL, phone=PHONE), make_doctor()
    exam_id = _exam_with_image(patient, 'Is it benign?')
    _pay(patient, exam_id)
    examinations.accept(actor=doctor, examination_id=exam_id)
    keys = _blob_keys([exam_id])

    with pytest.raises(ConflictError, match='Wait for the report, or ask the practice'):
        privacy.delete_patient_account(actor=patient, password=PASSWORD)

    assert _blob_keys([exam_id]) == keys
    assert accounts.authenticate(email=EMAIL, password=PASSWORD).user_id == patient.user_id
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == ExamStatus.UNDER_REVIEW


def test_wrong_password_changes_nothing(case):
    keys = _blob_keys([case.reported])
    hits = _text_hits(NEEDLES)

    with pytest.raises(ValidationError, match='Password is incorrect') as raised:
        privacy.delete_patient_account(actor=case.patient, password='not my password at all')
    assert raised.value.field == 'password'
    with pytest.raises(ValidationError, match='Password is missing'):
        privacy.delete_patient_account(actor=case.patient, password='')

    assert _blob_keys([case.reported]) == keys
    assert _text_hits(NEEDLES) == hits
    assert examinations.get_exam(actor=case.patient, examination_id=case.pending).status == ExamStatus.PENDING
    assert accounts.authenticate(email=EMAIL, password=PASSWORD).user_id == case.patient.user_id


def test_deletion_only_for_patients(case, admin):
    for actor in (case.doctor, admin):
        with pytest.raises(NotFoundError):
            privacy.delete_patient_account(actor=actor, password=PASSWORD)


def test_confirmation_address_erased_after_failure(case, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_NOTIFICATION_MAX_ATTEMPTS', '1')
    monkeypatch.setenv('SECONDOPINION_SMTP_HOST', '127.0.0.1')
    monkeypatch.setenv('SECONDOPINION_SMTP_PORT', '9')  # the discard port: nothing listens there
    reset_settings()
    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)
    notifications.deliver_due()
    with db.session_scope() as session:
        row = session.scalar(select(Notification).where(Notification.template == 'account_deleted'))
        assert row.status == 'failed'
        assert row.recipient == notifications.ERASED_RECIPIENT
    assert _text_hits(NEEDLES) == []



def _stripe_paid(patient, fake) -> tuple[str, str]:  # noqa: ANN001
    exam_id = submitted(patient)
    session_id = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    body = event('checkout.session.completed', fake.complete(session_id))
    stripe_gateway.handle_webhook(body, sign(body))
    return exam_id, session_id


def test_deletion_refunds_through_stripe(stripe_server, make_patient):
    patient = make_patient(NAME, email=EMAIL, phone=PHONE)
    exam_id, session_id = _stripe_paid(patient, stripe_server)

    privacy.delete_patient_account(actor=patient, password=PASSWORD)

    [refund] = stripe_server.refunds
    assert refund['amount'] == 15000
    assert refund['payment_intent'] == stripe_server.sessions[session_id]['payment_intent']
    with db.session_scope() as session:
        assert session.get(Examination, exam_id).status == ExamStatus.CANCELLED


def test_failed_refund_stops_deletion(stripe_server, make_patient):
    patient = make_patient(NAME, email=EMAIL, phone=PHONE)
    exam_id, _session_id = _stripe_paid(patient, stripe_server)
    hits = _text_hits(NEEDLES)
    stripe_server.fail_next.extend([400])

    with pytest.raises(DomainError, match='so nothing was changed'):
        privacy.delete_patient_account(actor=patient, password=PASSWORD)

    assert _text_hits(NEEDLES) == hits
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == ExamStatus.PENDING
    assert accounts.authenticate(email=EMAIL, password=PASSWORD).user_id == patient.user_id


def test_deletion_discards_unfinished_uploads(case):
    upload_id = uploads.start_upload(actor=case.patient, examination_id=case.draft,
                                     files=[uploads.AnnouncedFile('scan.dcm', 1000)], session_id='browser-1')
    others_upload = uploads.start_upload(actor=case.other, examination_id=examinations.create_draft(actor=case.other),
                                         files=[uploads.AnnouncedFile('knee.dcm', 1000)], session_id='browser-2')
    assert (uploads.staging_root() / upload_id).is_dir()

    privacy.delete_patient_account(actor=case.patient, password=PASSWORD)

    assert not (uploads.staging_root() / upload_id).exists()
    assert (uploads.staging_root() / others_upload).is_dir()
