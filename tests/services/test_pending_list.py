"""The doctors' pending list: order, filters and paging of `examinations.list_pending` on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from secondopinion import db
from secondopinion.models import Examination
from secondopinion.models.base import utcnow
from secondopinion.services import examinations
from secondopinion.services.errors import ValidationError

from .flow import paid


def _set_waiting(exam_id: str, hours: float) -> None:
    """Backdate the payment and its promise, so the case has waited the given number of hours."""
    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        exam.paid_at -= timedelta(hours=hours)
        exam.due_at -= timedelta(hours=hours)


def _ids(doctor, **filters) -> list[str]:
    listed, _total = examinations.list_pending(actor=doctor, **filters)
    return [exam.id for exam in listed]


@pytest.fixture
def cases(make_patient) -> dict[str, str]:
    """Five pending cases whose waiting times differ from their creation order."""
    patient = make_patient()
    exams = {
        'ct_chest': paid(patient, modality='CT', body_part='Chest'),
        'mr_left_knee_urgent': paid(patient, modality='MR', body_part='Left knee', urgency='urgent'),
        'mr_right_knee': paid(patient, modality='MR', body_part='Right KNEE'),
        'ct_head_urgent': paid(patient, modality='CT', body_part='Head', urgency='urgent'),
        'cr_knee_100%': paid(patient, modality='CR', body_part='Knee 100%'),
    }
    for name, hours in {'ct_chest': 1, 'mr_left_knee_urgent': 2, 'mr_right_knee': 30, 'ct_head_urgent': 5,
                        'cr_knee_100%': 3}.items():
        _set_waiting(exams[name], hours)
    return exams


def test_least_time_left_first(cases, make_doctor):
    # Promises of 24 h (urgent) and 72 h (routine): 19, 22, 42, 69 and 71 hours are left.
    assert _ids(make_doctor()) == [cases['ct_head_urgent'], cases['mr_left_knee_urgent'],
                                   cases['mr_right_knee'], cases['cr_knee_100%'], cases['ct_chest']]


def test_routine_case_near_promise_before_new_urgent(make_patient, make_doctor):
    patient = make_patient()
    urgent = paid(patient, modality='CT', body_part='Head', urgency='urgent')
    routine = paid(patient, modality='CT', body_part='Chest')
    _set_waiting(routine, 60)  # 12 hours left, against 24 for the urgent case paid just now

    assert _ids(make_doctor()) == [routine, urgent]


def test_promise_follows_urgency_at_payment(make_patient):
    patient = make_patient()
    for urgency, hours in (('routine', 72), ('urgent', 24)):
        exam_id = paid(patient, urgency=urgency)
        with db.session_scope() as session:
            exam = session.get(Examination, exam_id)
            assert exam.due_at - exam.paid_at == timedelta(hours=hours)


def test_filter_by_modality(cases, make_doctor):
    doctor = make_doctor()
    assert _ids(doctor, modality='MR') == [cases['mr_left_knee_urgent'], cases['mr_right_knee']]
    assert _ids(doctor, modality=' mr ') == [cases['mr_left_knee_urgent'], cases['mr_right_knee']]
    assert _ids(doctor, modality='US') == []


def test_filter_body_part_ignores_case(cases, make_doctor):
    doctor = make_doctor()
    knees = [cases['mr_left_knee_urgent'], cases['mr_right_knee'], cases['cr_knee_100%']]
    assert _ids(doctor, body_part='knee') == knees
    assert _ids(doctor, body_part='KNEE') == knees
    assert _ids(doctor, body_part='ght kn') == [cases['mr_right_knee']]


def test_filter_body_part_is_literal(cases, make_doctor):
    # LIKE treats "%" and "_" as wildcards, so these check that the filter matches them literally.
    doctor = make_doctor()
    assert _ids(doctor, body_part='100%') == [cases['cr_knee_100%']]
    assert _ids(doctor, body_part='%') == [cases['cr_knee_100%']]
    assert _ids(doctor, body_part='_') == []


def test_filter_by_urgency(cases, make_doctor):
    doctor = make_doctor()
    assert _ids(doctor, urgency='urgent') == [cases['ct_head_urgent'], cases['mr_left_knee_urgent']]
    assert _ids(doctor, urgency='routine') == [cases['mr_right_knee'], cases['cr_knee_100%'], cases['ct_chest']]


def test_filters_combine_and_count(cases, make_doctor):
    listed, total = examinations.list_pending(actor=make_doctor(), modality='MR', body_part='knee',
                                              urgency='routine')
    assert [exam.id for exam in listed] == [cases['mr_right_knee']]
    assert total == 1


def test_empty_filters_match_everything(cases, make_doctor):
    doctor = make_doctor()
    assert _ids(doctor, modality='', body_part='  ', urgency=None) == _ids(doctor)


def test_paging_keeps_total_of_filter(cases, make_doctor):
    doctor = make_doctor()
    everything = _ids(doctor)
    first, total = examinations.list_pending(actor=doctor, limit=2, offset=0)
    second, _ = examinations.list_pending(actor=doctor, limit=2, offset=2)
    last, _ = examinations.list_pending(actor=doctor, limit=2, offset=4)
    assert total == 5
    assert [exam.id for exam in first + second + last] == everything
    knees, knee_total = examinations.list_pending(actor=doctor, body_part='knee', limit=1, offset=1)
    assert [exam.id for exam in knees] == [cases['mr_right_knee']]
    assert knee_total == 3


def test_equal_waiting_times_page_without_overlap(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_ids = [paid(patient) for _ in range(6)]
    same_time = utcnow() - timedelta(hours=1)
    with db.session_scope() as session:
        session.execute(update(Examination).where(Examination.id.in_(exam_ids)).values(paid_at=same_time))
    pages = [_ids(doctor, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert sorted(exam_id for page in pages for exam_id in page) == sorted(exam_ids)


@pytest.mark.parametrize(('filters', 'field'), [({'modality': 'XX'}, 'modality'), ({'urgency': 'soon'}, 'urgency'),
                                                ({'limit': 0}, None), ({'offset': -1}, None)])
def test_invalid_filter_rejected(make_doctor, filters, field):
    with pytest.raises(ValidationError) as error:
        examinations.list_pending(actor=make_doctor(), **filters)
    assert error.value.field == field
