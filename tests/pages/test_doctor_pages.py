"""Doctor pages: the live board, accepting against another doctor, releasing and the report editor."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.services import examinations
from tests.services.flow import paid

from .helpers import accept_on_board, sign_in, wait_for_board_case

QUESTION = 'Is the nodule in the right upper lobe benign?'


async def test_second_accept_shows_message(user: User, create_user, make_patient, make_doctor):
    make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    exam_id = paid(make_patient())
    first, second = user, create_user()
    await sign_in(first, 'first@example.org')
    await sign_in(second, 'second@example.org')
    await first.should_see(QUESTION)
    await second.should_see(QUESTION)

    accept_on_board(first, exam_id)
    accept_on_board(second, exam_id)
    await second.should_see('This case was already accepted by another doctor.')
    await second.should_see(marker='board-empty', retries=40)
    await first.should_see(marker='finalize', retries=40)


async def test_release_returns_case_to_board(user: User, create_user, make_patient, make_doctor):
    make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    exam_id = paid(make_patient())
    other = create_user()
    await sign_in(other, 'second@example.org')
    await sign_in(user, 'first@example.org')
    await wait_for_board_case(user, exam_id)
    accept_on_board(user, exam_id)
    await user.should_see(marker='release', retries=40)
    await other.should_see(marker='board-empty', retries=40)

    user.find(marker='release').click()
    await user.should_see(marker='board-count', retries=40)
    await wait_for_board_case(other, exam_id)


async def test_report_draft_survives_reload(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    user.find(marker='findings').type('Nodule of 6 mm.')
    user.find(marker='save-report').click()
    await user.should_see('Draft saved.')
    await user.open(f'/doctor/cases/{exam_id}')
    assert user.find(marker='findings').elements.pop().value == 'Nodule of 6 mm.'


async def test_finalize_without_impression_rejected(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open(f'/doctor/cases/{exam_id}')
    user.find(marker='findings').type('Nodule of 6 mm.')
    user.find(marker='finalize').click()
    user.find(marker='confirm-finalize').click()
    await user.should_see('Impression is missing')
    assert examinations.get_exam(actor=doctor, examination_id=exam_id).status == 'under_review'


async def test_my_cases_lists_accepted(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient('Zoë Łukasiewicz'))
    examinations.accept(actor=doctor, examination_id=exam_id)
    await sign_in(user, 'doctor@example.org')
    await user.open('/doctor/cases')
    await user.should_see(marker=f'case-{exam_id}')
    await user.should_see('Zoë Łukasiewicz')
    await user.should_see('Under review')
