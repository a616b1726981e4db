"""Every transition of the examination state machine, legal and illegal, on a real database."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import (AuditEvent, Examination, Income, Notification, Payment, ProcessedEvent, Report)
from secondopinion.services import accounts, events, examinations, payments, reports, studies
from secondopinion.services.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError

from .flow import draft_with_link, paid, submitted

REPORT = {'findings': 'A 6 mm solid nodule in the right upper lobe, smooth margins.',
          'impression': 'Probably benign nodule.', 'recommendations': 'Follow-up CT in 12 months.'}


def _count(model, **filters) -> int:  # noqa: ANN001
    with db.session_scope() as session:
        query = select(func.count()).select_from(model)
        for name, value in filters.items():
            query = query.where(getattr(model, name) == value)
        return session.scalar(query) or 0


def _status(exam_id: str) -> str:
    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        assert exam is not None
        return exam.status


def test_submit_incomplete_draft_rejected(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    with pytest.raises(ValidationError) as error:
        examinations.submit(actor=patient, examination_id=exam_id)
    assert 'type of examination' in str(error.value)
    assert 'clinical question' in str(error.value)
    assert 'images' in str(error.value)
    assert _status(exam_id) == 'draft'


def test_submit_sets_price_by_modality_and_urgency(make_patient):
    patient = make_patient()
    routine = submitted(patient, modality='CT')
    urgent = submitted(patient, modality='MR', urgency='urgent')
    assert examinations.get_exam(actor=patient, examination_id=routine).price_cents == 15000
    assert examinations.get_exam(actor=patient, examination_id=urgent).price_cents == 27000
    assert _status(routine) == 'awaiting_payment'


def test_submitted_exam_cannot_change(make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    with pytest.raises(ConflictError):
        examinations.update_details(actor=patient, examination_id=exam_id, modality='MR', body_part='Knee',
                                    clinical_question='?')
    with pytest.raises(ConflictError):
        examinations.submit(actor=patient, examination_id=exam_id)


def test_invalid_link_and_modality_rejected(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    with pytest.raises(ValidationError, match='javascript:alert'):
        examinations.add_link(actor=patient, examination_id=exam_id, url='javascript:alert(1)')
    with pytest.raises(ValidationError, match='XYZ'):
        examinations.update_details(actor=patient, examination_id=exam_id, modality='XYZ', body_part='',
                                    clinical_question='')
    assert examinations.get_exam(actor=patient, examination_id=exam_id).links == ()


def test_payment_moves_to_pending_with_income(make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    assert _status(exam_id) == 'pending'
    with db.session_scope() as session:
        income = session.scalar(select(Income).where(Income.examination_id == exam_id, Income.kind == 'payment'))
        assert income is not None
        assert income.amount_cents == 15000
        assert income.platform_fee_cents == 4500
        assert income.doctor_share_cents == 10500
        fee = session.scalar(select(Income).where(Income.examination_id == exam_id, Income.kind == 'platform_fee'))
        assert fee is not None
        assert (fee.amount_cents, fee.payment_id) == (4500, income.payment_id)
    assert _count(Payment, examination_id=exam_id, status='succeeded') == 1
    assert _count(Notification, examination_id=exam_id, template='payment_received') == 1


def test_paying_twice_applies_once(make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=patient, provider_ref=ref)
    assert payments.apply_payment_succeeded(provider='test', provider_ref=ref, event_id=f'test:{ref}') is False
    assert payments.apply_payment_succeeded(provider='test', provider_ref=ref, event_id='other-event') is False
    assert _count(Income, examination_id=exam_id) == 2  # the payment and the platform fee from it
    assert _count(Notification, examination_id=exam_id, template='payment_received') == 1
    assert _count(ProcessedEvent) == 2
    with pytest.raises(ConflictError):
        payments.start_checkout(actor=patient, examination_id=exam_id)


def test_cancelled_checkout_keeps_awaiting_payment(make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    payments.cancel_test_checkout(actor=patient, provider_ref=ref)
    assert _status(exam_id) == 'awaiting_payment'
    with pytest.raises(ConflictError):
        payments.complete_test_checkout(actor=patient, provider_ref=ref)
    new_ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    assert new_ref != ref
    payments.complete_test_checkout(actor=patient, provider_ref=new_ref)
    assert _status(exam_id) == 'pending'


def test_other_patient_cannot_pay_or_see(make_patient):
    alice, bob = make_patient('Alice'), make_patient('Bob')
    exam_id = submitted(alice)
    ref = payments.start_checkout(actor=alice, examination_id=exam_id).rsplit('/', 1)[1]
    with pytest.raises(NotFoundError):
        payments.complete_test_checkout(actor=bob, provider_ref=ref)
    with pytest.raises(NotFoundError):
        examinations.get_exam(actor=bob, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        examinations.cancel(actor=bob, examination_id=exam_id)
    assert _status(exam_id) == 'awaiting_payment'


def test_accept_moves_to_under_review(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    exam = examinations.get_exam(actor=doctor, examination_id=exam_id)
    assert exam.status == 'under_review'
    assert exam.doctor_id == doctor.doctor_id
    assert _count(Notification, examination_id=exam_id, template='case_accepted') == 1
    assert _count(AuditEvent, object_id=exam_id, action='examination.accepted') == 1


def test_accept_not_pending_rejected(make_patient, make_doctor):
    patient, first, second = make_patient(), make_doctor(), make_doctor()
    draft = draft_with_link(patient)
    awaiting = submitted(patient)
    with pytest.raises(NotFoundError):
        examinations.accept(actor=first, examination_id=draft)
    with pytest.raises(NotFoundError):
        examinations.accept(actor=first, examination_id=awaiting)
    exam_id = paid(patient)
    examinations.accept(actor=first, examination_id=exam_id)
    with pytest.raises(ConflictError, match='already accepted by another doctor'):
        examinations.accept(actor=second, examination_id=exam_id)
    assert examinations.get_exam(actor=first, examination_id=exam_id).doctor_id == first.doctor_id


def test_patient_cannot_accept_or_finalize(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    with pytest.raises(PermissionDeniedError):
        examinations.accept(actor=patient, examination_id=exam_id)
    examinations.accept(actor=doctor, examination_id=exam_id)
    with pytest.raises(PermissionDeniedError):
        reports.finalize(actor=patient, examination_id=exam_id, **REPORT)
    assert _status(exam_id) == 'under_review'
    assert _count(Report, examination_id=exam_id) == 0


def test_other_doctor_cannot_see_or_finalize(make_patient, make_doctor):
    patient, owner, other = make_patient(), make_doctor(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=owner, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        examinations.get_exam(actor=other, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        reports.finalize(actor=other, examination_id=exam_id, **REPORT)
    with pytest.raises(NotFoundError):
        examinations.release(actor=other, examination_id=exam_id)


def test_release_returns_case_to_pending(make_patient, make_doctor):
    patient, first, second = make_patient(), make_doctor(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=first, examination_id=exam_id)
    examinations.release(actor=first, examination_id=exam_id)
    assert _status(exam_id) == 'pending'
    pending, total = examinations.list_pending(actor=second)
    assert total == 1
    assert pending[0].id == exam_id
    examinations.accept(actor=second, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        examinations.release(actor=first, examination_id=exam_id)


def test_concurrent_accept_one_winner(make_patient, make_doctor):
    patient = make_patient()
    doctors = [make_doctor() for _ in range(4)]
    exam_id = paid(patient)
    barrier = threading.Barrier(len(doctors))
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(doctor) -> None:  # noqa: ANN001
        barrier.wait()
        try:
            examinations.accept(actor=doctor, examination_id=exam_id)
            result = 'won'
        except ConflictError:
            result = 'lost'
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(doctor,)) for doctor in doctors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ['lost', 'lost', 'lost', 'won']
    assert _count(AuditEvent, object_id=exam_id, action='examination.accepted') == 1
    assert _count(Notification, examination_id=exam_id, template='case_accepted') == 1


def test_deactivated_doctor_cannot_accept(admin, make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    with pytest.raises(ConflictError, match='deactivated'):
        examinations.accept(actor=doctor, examination_id=exam_id)
    assert _status(exam_id) == 'pending'
    assert accounts.get_actor(doctor.user_id) is None


def test_finalize_requires_impression(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    with pytest.raises(ValidationError, match='Impression'):
        reports.finalize(actor=doctor, examination_id=exam_id, findings='x', impression=' ', recommendations='')
    assert _status(exam_id) == 'under_review'


def test_finalize_reports_and_records_earning(make_patient, make_doctor):
    patient, doctor = make_patient('Şükrü Yılmaz'), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    assert _status(exam_id) == 'reported'
    with db.session_scope() as session:
        earning = session.scalar(select(Income).where(Income.examination_id == exam_id,
                                                      Income.kind == 'doctor_earning'))
        assert earning is not None
        assert earning.doctor_id == doctor.doctor_id
        assert earning.amount_cents == 10500
        report = session.scalar(select(Report).where(Report.examination_id == exam_id))
        assert report is not None
        assert report.is_final
        assert report.pdf_sha256 is not None
    name, chunks = reports.open_report_pdf(actor=patient, examination_id=exam_id)
    assert name.endswith('.pdf')
    assert b''.join(chunks).startswith(b'%PDF')
    assert _count(Notification, examination_id=exam_id, template='report_ready') == 1
    with pytest.raises(ConflictError):
        reports.save_draft(actor=doctor, examination_id=exam_id, **REPORT)
    with pytest.raises(ConflictError):
        examinations.release(actor=doctor, examination_id=exam_id)


def test_report_hidden_until_final(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.save_draft(actor=doctor, examination_id=exam_id, **REPORT)
    assert reports.get_report(actor=patient, examination_id=exam_id) is None
    assert reports.get_report(actor=doctor, examination_id=exam_id).findings == REPORT['findings']
    with pytest.raises(NotFoundError):
        reports.open_report_pdf(actor=patient, examination_id=exam_id)


def test_notified_patient_completes_exam(admin, make_patient, make_doctor):
    from secondopinion.services import notifications

    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    notifications.deliver_due()
    assert _status(exam_id) == 'completed'
    assert any(path.suffix == '.eml' for path in notifications.outbox_files(actor=admin))


def test_cancel_pending_refunds(make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    examinations.cancel(actor=patient, examination_id=exam_id)
    assert _status(exam_id) == 'cancelled'
    assert _count(Payment, examination_id=exam_id, status='refunded') == 1
    with db.session_scope() as session:
        refund = session.scalar(select(Income).where(Income.examination_id == exam_id, Income.kind == 'refund'))
        assert refund is not None
        assert refund.amount_cents == -15000
    assert _count(Notification, examination_id=exam_id, template='refund') == 1


def test_cancel_after_accept_only_by_admin(make_patient, make_doctor, admin):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    with pytest.raises(ConflictError):
        examinations.cancel(actor=patient, examination_id=exam_id)
    assert _status(exam_id) == 'under_review'
    examinations.cancel(actor=admin, examination_id=exam_id)
    assert _status(exam_id) == 'cancelled'
    assert _count(Income, examination_id=exam_id, kind='refund') == 1


def test_cancel_after_report_rejected(make_patient, make_doctor, admin):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='Normal.', impression='Normal.',
                     recommendations='')
    with pytest.raises(ConflictError):
        examinations.cancel(actor=admin, examination_id=exam_id)
    assert _status(exam_id) == 'reported'


def test_transitions_publish_events(make_patient, make_doctor):
    seen: list[tuple[str, str]] = []
    unsubscribe = events.subscribe(lambda event: seen.append((event.examination_id, event.status)))
    try:
        patient, doctor = make_patient(), make_doctor()
        exam_id = paid(patient)
        examinations.accept(actor=doctor, examination_id=exam_id)
        examinations.release(actor=doctor, examination_id=exam_id)
    finally:
        unsubscribe()
    statuses = [status for exam, status in seen if exam == exam_id]
    assert statuses == ['awaiting_payment', 'pending', 'under_review', 'pending']


def test_doctor_sees_pending_not_drafts(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    draft = draft_with_link(patient)
    pending = paid(patient)
    with pytest.raises(NotFoundError):
        examinations.get_exam(actor=doctor, examination_id=draft)
    assert examinations.get_exam(actor=doctor, examination_id=pending).status == 'pending'
    urgent = paid(patient, urgency='urgent')
    listed, total = examinations.list_pending(actor=doctor)
    assert total == 2
    assert [exam.id for exam in listed] == [urgent, pending]


def test_new_examination_reuses_an_untouched_draft(make_patient):
    patient = make_patient()
    first = examinations.open_new_draft(actor=patient)
    assert examinations.open_new_draft(actor=patient) == first
    examinations.update_details(actor=patient, examination_id=first, modality='CT', body_part='', clinical_question='')
    second = examinations.open_new_draft(actor=patient)
    assert second != first
    examinations.add_link(actor=patient, examination_id=second, url='https://pacs.example.org/share/2')
    assert examinations.open_new_draft(actor=patient) not in {first, second}
    other = make_patient('Bob', email='bob@example.org')
    assert examinations.open_new_draft(actor=other) not in {first, second}


def test_suggest_details_from_images(make_patient):
    from pathlib import Path

    import pydicom
    from pydicom.data import get_testdata_file

    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    assert examinations.suggest_details(actor=patient, examination_id=exam_id) == ('', '')
    dataset = pydicom.dcmread(get_testdata_file('CT_small.dcm'))
    dataset.BodyPartExamined = 'LOWER_LEG'
    path = Path(os.environ['SECONDOPINION_DATA_DIR']).parent / 'leg.dcm'
    dataset.save_as(path)
    studies.add_files(actor=patient, examination_id=exam_id, files=[('leg.dcm', path)])
    assert examinations.suggest_details(actor=patient, examination_id=exam_id) == ('CT', 'Lower leg')
