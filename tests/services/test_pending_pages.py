"""Pending-list pages shared by the boards of one process: shared until a change, then queried again."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from secondopinion import db
from secondopinion.models import Examination, ExamStatus
from secondopinion.services import examinations, pending_pages
from secondopinion.services.errors import DomainError

from .flow import paid


def test_identical_requests_share_result(make_patient, make_doctor) -> None:
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)

    first = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)
    second = pending_pages.list_pending_shared(actor=make_doctor(), limit=50, offset=0)

    assert [exam.id for exam in first[0]] == [exam_id]
    assert second is first


def test_change_forces_new_query(make_patient, make_doctor) -> None:
    patient, doctor = make_patient(), make_doctor()
    first_id = paid(patient)
    before, _ = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)

    second_id = paid(patient)
    after, total = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)

    assert [exam.id for exam in before] == [first_id]
    assert {exam.id for exam in after} == {first_id, second_id}
    assert total == 2


def test_other_filters_not_shared(make_patient, make_doctor) -> None:
    patient, doctor = make_patient(), make_doctor()
    paid(patient, modality='CT')

    everything, _ = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)
    only_mr, mr_total = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0, modality='MR')

    assert len(everything) == 1
    assert only_mr == []
    assert mr_total == 0


def test_old_result_expires(make_patient, make_doctor, monkeypatch) -> None:
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)
    # A change that published no event, as when the event of another instance was lost.
    with db.session_scope() as session:
        session.execute(update(Examination).where(Examination.id == exam_id)
                        .values(status=ExamStatus.CANCELLED))
    monkeypatch.setattr(pending_pages, 'MAX_AGE_SECONDS', 0.0)

    listed, total = pending_pages.list_pending_shared(actor=doctor, limit=50, offset=0)

    assert listed == []
    assert total == 0


def test_patient_rejected(make_patient) -> None:
    patient = make_patient()

    with pytest.raises(DomainError):
        pending_pages.list_pending_shared(actor=patient, limit=50, offset=0)


def test_same_as_list_pending(make_patient, make_doctor) -> None:
    patient, doctor = make_patient(), make_doctor()
    for _ in range(3):
        paid(patient)

    shared = pending_pages.list_pending_shared(actor=doctor, limit=2, offset=1)

    assert shared == examinations.list_pending(actor=doctor, limit=2, offset=1)
