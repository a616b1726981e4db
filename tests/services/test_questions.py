"""Follow-up questions after the report: limits, who may ask and answer, notifications, audit, privacy."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import AuditEvent, ExamQuestion, Notification
from secondopinion.services import examinations, privacy, questions
from secondopinion.services.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import PASSWORD

from .flow import paid, reported


def _notifications(template: str) -> list[Notification]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(Notification).where(Notification.template == template)))
        session.expunge_all()
        return rows


def test_question_and_answer_thread(make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    doctor = make_doctor(email='doctor@example.org', name='Dr. Grace Hopper')
    exam_id = reported(patient, doctor)

    question_id = questions.ask(actor=patient, examination_id=exam_id, text='  Should I see a pulmonologist?  ')
    [asked] = _notifications('question_asked')
    assert asked.recipient == 'doctor@example.org'
    assert f'/doctor/cases/{exam_id}' in asked.body_text

    questions.answer(actor=doctor, examination_id=exam_id, question_id=question_id,
                     text='Not now; the follow-up CT in 12 months is enough.')
    [answered] = _notifications('question_answered')
    assert answered.recipient == 'patient@example.org'

    for viewer in (patient, doctor):
        thread = questions.get_thread(actor=viewer, examination_id=exam_id)
        [entry] = thread.questions
        assert entry.question == 'Should I see a pulmonologist?'
        assert entry.answer == 'Not now; the follow-up CT in 12 months is enough.'
        assert entry.doctor_name == 'Dr. Grace Hopper'
    with db.session_scope() as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == exam_id)))
    assert {'question.asked', 'question.answered'} <= actions


def test_question_limit_one_open(make_patient, make_doctor, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_MAX_FOLLOW_UP_QUESTIONS', '2')
    from secondopinion.config import reset_settings
    reset_settings()
    patient, doctor = make_patient(), make_doctor()
    exam_id = reported(patient, doctor)

    first = questions.ask(actor=patient, examination_id=exam_id, text='Is the nodule growing?')
    with pytest.raises(ConflictError, match='has not answered your last question'):
        questions.ask(actor=patient, examination_id=exam_id, text='And is it dangerous?')
    questions.answer(actor=doctor, examination_id=exam_id, question_id=first, text='It is unchanged.')
    second = questions.ask(actor=patient, examination_id=exam_id, text='And is it dangerous?')
    questions.answer(actor=doctor, examination_id=exam_id, question_id=second, text='Very unlikely.')

    thread = questions.get_thread(actor=patient, examination_id=exam_id)
    assert (thread.remaining, thread.can_ask) == (0, False)
    with pytest.raises(ConflictError, match='all 2 questions'):
        questions.ask(actor=patient, examination_id=exam_id, text='One more question, please?')
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExamQuestion)) == 2


def test_no_questions_before_report(make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    thread = questions.get_thread(actor=patient, examination_id=exam_id)
    assert not thread.can_ask
    with pytest.raises(ConflictError, match='once your report is ready'):
        questions.ask(actor=patient, examination_id=exam_id, text='When will the report come?')


@pytest.mark.parametrize('text, message', [('   ', 'at least 5 characters'), ('x' * 2001, 'at most 2000')])
def test_bad_question_text_rejected(make_patient, make_doctor, text, message):
    patient = make_patient()
    exam_id = reported(patient, make_doctor())
    with pytest.raises(ValidationError, match=message):
        questions.ask(actor=patient, examination_id=exam_id, text=text)
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExamQuestion)) == 0
    assert _notifications('question_asked') == []


def test_only_owner_asks_and_only_reporting_doctor_answers(make_patient, make_doctor, admin):
    owner, stranger = make_patient(), make_patient()
    doctor, other_doctor = make_doctor(), make_doctor()
    exam_id = reported(owner, doctor)

    with pytest.raises(NotFoundError):
        questions.ask(actor=stranger, examination_id=exam_id, text='Whose scan is this?')
    with pytest.raises(NotFoundError):
        questions.get_thread(actor=stranger, examination_id=exam_id)
    question_id = questions.ask(actor=owner, examination_id=exam_id, text='Is it benign?')
    with pytest.raises(NotFoundError):
        questions.get_thread(actor=other_doctor, examination_id=exam_id)
    with pytest.raises(NotFoundError):
        questions.answer(actor=other_doctor, examination_id=exam_id, question_id=question_id, text='Yes, it is.')
    with pytest.raises(Exception, match='(?i)only|role|permission|not allowed'):
        questions.answer(actor=owner, examination_id=exam_id, question_id=question_id, text='Yes, it is.')

    # The admin may read the thread; the question stays open for the reporting doctor.
    assert questions.get_thread(actor=admin, examination_id=exam_id).open_question.id == question_id


def test_second_answer_is_refused(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = reported(patient, doctor)
    question_id = questions.ask(actor=patient, examination_id=exam_id, text='Is it benign?')
    questions.answer(actor=doctor, examination_id=exam_id, question_id=question_id, text='Yes.')
    with pytest.raises(ConflictError, match='already answered'):
        questions.answer(actor=doctor, examination_id=exam_id, question_id=question_id, text='Yes, certainly.')
    assert questions.get_thread(actor=patient, examination_id=exam_id).questions[0].answer == 'Yes.'


def test_questions_sent_at_once_respect_the_limit(make_patient, make_doctor, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_MAX_FOLLOW_UP_QUESTIONS', '1')
    from secondopinion.config import reset_settings
    reset_settings()
    patient = make_patient()
    exam_id = reported(patient, make_doctor())
    outcomes: list[str] = []

    def ask() -> None:
        try:
            questions.ask(actor=patient, examination_id=exam_id, text='Is this nodule benign?')
            outcomes.append('asked')
        except ConflictError:
            outcomes.append('refused')

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ['asked', 'refused', 'refused', 'refused']


def test_thread_in_export_and_removed_with_account(make_patient, make_doctor):
    patient = make_patient()
    doctor = make_doctor()
    exam_id = reported(patient, doctor)
    question_id = questions.ask(actor=patient, examination_id=exam_id, text='Is it benign?')
    questions.answer(actor=doctor, examination_id=exam_id, question_id=question_id, text='Yes.')
    examinations.get_exam(actor=patient, examination_id=exam_id)

    with db.session_scope() as session:
        [row] = questions.export_rows(session, exam_id)
    assert (row['question'], row['answer']) == ('Is it benign?', 'Yes.')

    privacy.delete_patient_account(actor=patient, password=PASSWORD)
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExamQuestion)) == 0
