"""The question thread on the pages: the patient asks on the examination page, the doctor answers on the case."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.services import questions
from tests.services.flow import paid, reported

from .helpers import set_value, sign_in


async def test_patient_asks_and_doctor_answers(user: User, create_user, make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    doctor = make_doctor(email='doctor@example.org')
    exam_id = reported(patient, doctor)

    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Questions about the report')
    await user.should_see('You can ask 3 more questions.')
    set_value(user, 'question-text', 'Do I need a biopsy?')
    user.find(marker='send-question').click()
    await user.should_see('Waiting for the radiologist\'s answer.')
    await user.should_see('The radiologist has not answered your last question yet', retries=20)

    radiologist = create_user()
    await sign_in(radiologist, 'doctor@example.org')
    await radiologist.open('/doctor/cases')
    await radiologist.should_see('1 question to answer')
    await radiologist.open(f'/doctor/cases/{exam_id}')
    await radiologist.should_see('Do I need a biopsy?')
    [question] = questions.get_thread(actor=doctor, examination_id=exam_id).questions
    set_value(radiologist, f'answer-text-{question.id}', 'No, a follow-up CT is enough.')
    radiologist.find(marker=f'send-answer-{question.id}').click()
    await radiologist.should_see(marker=f'answer-{question.id}')

    await user.open(f'/exams/{exam_id}')
    await user.should_see('No, a follow-up CT is enough.')
    await user.should_see('You can ask 2 more questions.')


async def test_empty_question_shows_field_error(user: User, make_patient, make_doctor):
    patient = make_patient(email='patient@example.org')
    exam_id = reported(patient, make_doctor())
    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    set_value(user, 'question-text', ' ')
    user.find(marker='send-question').click()
    await user.should_see('Write at least 5 characters for your question.')
    assert questions.get_thread(actor=patient, examination_id=exam_id).questions == ()


async def test_no_question_form_before_report(user: User, make_patient):
    patient = make_patient(email='patient@example.org')
    exam_id = paid(patient)
    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Waiting for a radiologist')
    await user.should_not_see('Questions about the report')
