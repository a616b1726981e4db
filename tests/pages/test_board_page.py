"""The doctors' live board: two boards at once, in-place updates, filters, paging, deactivation and cleanup."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import weakref
from collections.abc import Callable
from datetime import timedelta

from nicegui import core, ui
from nicegui.testing import User

from secondopinion.models.base import utcnow
from secondopinion.services import accounts, events, examinations
from tests.services.flow import paid

from .helpers import (accept_on_board, board_case, board_case_ids, board_cases_element, set_value, sign_in,
                      wait_for_board_case)

# A change must reach every open board within a second.
LIVE_UPDATE_LIMIT_SECONDS = 1.0


def _card_ids_in_order(user: User, exam_ids: list[str]) -> list[str]:
    """Return which of the given examinations have a card on the board, top to bottom."""
    return [exam_id for exam_id in board_case_ids(user) if exam_id in exam_ids]


def _count_text(user: User) -> str:
    return user.find(marker='board-count').elements.pop().text


async def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'condition not met in time'
        await asyncio.sleep(0.05)


async def test_two_boards_update_in_place(user: User, create_user, make_patient, make_doctor):
    make_doctor(email='first@example.org')
    make_doctor(email='second@example.org')
    patient = make_patient()
    unrelated = paid(patient, modality='CT', body_part='Chest')
    first, second = user, create_user()
    await sign_in(first, 'first@example.org')
    await sign_in(second, 'second@example.org')
    await wait_for_board_case(first, unrelated)
    await wait_for_board_case(second, unrelated)
    # The board's case list is one element; an update changes its list and keeps the element.
    cases_before = board_cases_element(second)

    new = paid(patient, modality='MR', body_part='Left knee')
    started = time.monotonic()  # the payment published its event just before paid() returned
    await wait_for_board_case(first, new)
    await wait_for_board_case(second, new)
    assert time.monotonic() - started < LIVE_UPDATE_LIMIT_SECONDS
    assert board_cases_element(second) is cases_before
    assert board_case_ids(second) == [unrelated, new]

    accept_on_board(first, new)
    await first.should_see(marker='finalize', retries=40)
    await wait_for_board_case(second, new, on_board=False)
    assert board_cases_element(second) is cases_before
    assert not cases_before.is_deleted
    assert board_case_ids(second) == [unrelated]
    assert _count_text(second) == '1 waiting'


async def test_accept_on_unchanged_row_survives_update(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    patient = make_patient()
    kept = paid(patient)
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, kept)

    other = paid(patient, urgency='urgent')
    await wait_for_board_case(user, other)
    assert _card_ids_in_order(user, [kept, other]) == [other, kept]
    accept_on_board(user, kept)
    await user.should_see(marker='finalize', retries=40)
    assert examinations.get_exam(actor=doctor, examination_id=kept).status == 'under_review'


async def test_cancelled_case_leaves_board(user: User, make_patient, make_doctor):
    make_doctor(email='doctor@example.org')
    patient = make_patient()
    staying, cancelled = paid(patient), paid(patient)
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, cancelled)
    cases = board_cases_element(user)

    examinations.cancel(actor=patient, examination_id=cancelled)
    await wait_for_board_case(user, cancelled, on_board=False)
    assert board_cases_element(user) is cases
    assert board_case_ids(user) == [staying]
    assert _count_text(user) == '1 waiting'


async def test_filters_narrow_list(user: User, make_patient, make_doctor):
    make_doctor(email='doctor@example.org')
    patient = make_patient()
    chest = paid(patient, modality='CT', body_part='Chest')
    left_knee = paid(patient, modality='MR', body_part='Left knee', urgency='urgent')
    right_knee = paid(patient, modality='MR', body_part='Right knee')
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, chest)
    assert _count_text(user) == '3 waiting'

    set_value(user, 'filter-modality', 'MR')
    await wait_for_board_case(user, chest, on_board=False)
    assert _card_ids_in_order(user, [chest, left_knee, right_knee]) == [left_knee, right_knee]
    assert _count_text(user) == '2 waiting'

    set_value(user, 'filter-body-part', 'RIGHT')
    await wait_for_board_case(user, left_knee, on_board=False)
    assert _card_ids_in_order(user, [chest, left_knee, right_knee]) == [right_knee]

    set_value(user, 'filter-body-part', '')
    set_value(user, 'filter-urgency', 'urgent')
    await wait_for_board_case(user, right_knee, on_board=False)
    assert _card_ids_in_order(user, [chest, left_knee, right_knee]) == [left_knee]

    # A case paid while the filters are set appears only when it matches them.
    ct_urgent = paid(patient, modality='CT', body_part='Head', urgency='urgent')
    mr_urgent = paid(patient, modality='MR', body_part='Spine', urgency='urgent')
    await wait_for_board_case(user, mr_urgent)
    await wait_for_board_case(user, ct_urgent, on_board=False)

    set_value(user, 'filter-modality', 'US')
    await user.should_see('No waiting examinations match these filters.')
    await user.should_see(marker='board-empty')


async def test_paging_shows_slice_and_count(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    patient = make_patient()
    for _ in range(120):
        paid(patient)
    expected, total = examinations.list_pending(actor=doctor, limit=200)
    assert total == 120
    expected_ids = [exam.id for exam in expected]

    await sign_in(user, 'doctor@example.org')
    await user.should_see('120 waiting, showing 1 to 50')
    assert _card_ids_in_order(user, expected_ids) == expected_ids[:50]
    assert not user.find(marker='board-previous').elements.pop().enabled

    user.find(marker='board-next').click()
    await user.should_see('120 waiting, showing 51 to 100')
    assert _card_ids_in_order(user, expected_ids) == expected_ids[50:100]

    user.find(marker='board-next').click()
    await user.should_see('120 waiting, showing 101 to 120')
    assert _card_ids_in_order(user, expected_ids) == expected_ids[100:]
    assert not user.find(marker='board-next').elements.pop().enabled

    user.find(marker='board-previous').click()
    await user.should_see('120 waiting, showing 51 to 100')
    assert _card_ids_in_order(user, expected_ids) == expected_ids[50:100]


async def test_last_page_emptied_shows_previous(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    patient = make_patient()
    exam_ids = [paid(patient) for _ in range(51)]
    await sign_in(user, 'doctor@example.org')
    await user.should_see('51 waiting, showing 1 to 50')
    user.find(marker='board-next').click()
    await user.should_see('51 waiting, showing 51 to 51')
    assert _card_ids_in_order(user, exam_ids) == exam_ids[50:]

    examinations.accept(actor=doctor, examination_id=exam_ids[50])
    await wait_for_board_case(user, exam_ids[0])
    assert _count_text(user) == '50 waiting'
    assert _card_ids_in_order(user, exam_ids) == exam_ids[:50]


async def test_deactivated_doctor_cannot_accept(user: User, admin, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, exam_id)

    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    accept_on_board(user, exam_id)
    await user.should_see('Your account is deactivated, so you cannot accept cases.')
    assert examinations.get_exam(actor=admin, examination_id=exam_id).status == 'pending'
    assert examinations.get_exam(actor=admin, examination_id=exam_id).doctor_id is None


async def test_waiting_time_ticks_in_place(user: User, make_patient, make_doctor, monkeypatch):
    # NiceGUI's user simulation imports the page modules anew for each test, so patch the current one.
    board_module = sys.modules['secondopinion.pages.board']
    monkeypatch.setattr(board_module, 'REFRESH_SECONDS', 0.0)
    make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    await sign_in(user, 'doctor@example.org')
    await user.should_see('waiting 0 min')
    cases = board_cases_element(user)

    later = utcnow() + timedelta(hours=1, minutes=30)
    monkeypatch.setattr(board_module, 'utcnow', lambda: later)
    await user.should_see('waiting 1 h 30 min')
    assert board_cases_element(user) is cases
    assert board_case(user, exam_id).waiting == '0 images, waiting 1 h 30 min,'


async def test_closed_board_unsubscribes(user: User, make_patient, make_doctor, monkeypatch):
    make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, exam_id)
    before = events.subscriber_count()
    client = await user.open('/doctor')
    await wait_for_board_case(user, exam_id)
    assert events.subscriber_count() == before + 1
    # The board's timer calls a method of the board; the page frame's session timer calls a plain function.
    timers = [element for element in client.elements.values()
              if isinstance(element, ui.timer) and hasattr(element.callback, '__self__')]
    board = weakref.ref(timers[0].callback.__self__)
    del timers

    # Close the tab the way NiceGUI detects it: the socket disconnects and nothing reconnects in time.
    monkeypatch.setattr(core.app.config, 'reconnect_timeout', 0.1)
    for socket_id in list(client._socket_to_document_id):
        client.handle_disconnect(socket_id)
    await _wait_until(lambda: client.is_deleted)
    assert events.subscriber_count() == before

    # The deleted client's timer task ends after its current sleep and then releases the board.
    await user.open('/doctor/cases')
    client = None

    def board_collected() -> bool:
        gc.collect()
        return board() is None

    await _wait_until(board_collected, timeout=2.0)


def _due_text(user: User, exam_id: str) -> str:
    return board_case(user, exam_id).due


async def test_card_counts_down_to_promise(user: User, make_patient, make_doctor, monkeypatch):
    board_module = sys.modules['secondopinion.pages.board']
    monkeypatch.setattr(board_module, 'REFRESH_SECONDS', 0.0)
    make_doctor(email='doctor@example.org')
    patient = make_patient()
    routine, urgent = paid(patient, body_part='Chest'), paid(patient, body_part='Head', urgency='urgent')
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, urgent)
    # The urgent case is promised within 24 h, the routine one within 72 h, so the urgent one comes first.
    assert _card_ids_in_order(user, [routine, urgent]) == [urgent, routine]
    assert _due_text(user, urgent) == 'due in 23 h 59 min'

    # 23 h later one hour is left, shown in the warning colour; an hour after the promise it is overdue.
    later = utcnow() + timedelta(hours=23)
    monkeypatch.setattr(board_module, 'utcnow', lambda: later)
    await _wait_until(lambda: _due_text(user, urgent) == 'due in 59 min')
    assert 'text-warning' in board_case(user, urgent).due_class
    overdue = utcnow() + timedelta(hours=25)
    monkeypatch.setattr(board_module, 'utcnow', lambda: overdue)
    await _wait_until(lambda: _due_text(user, urgent) == 'overdue by 1 h 0 min')
    assert 'text-negative' in board_case(user, urgent).due_class
    assert _due_text(user, routine).startswith('due in 46 h')


async def test_accept_without_id_ignored(user: User, make_patient, make_doctor):
    doctor = make_doctor(email='doctor@example.org')
    exam_id = paid(make_patient())
    await sign_in(user, 'doctor@example.org')
    await wait_for_board_case(user, exam_id)

    user.find(marker='board-rows').trigger('accept', [])
    await user.should_see(marker='board-count')
    assert board_case_ids(user) == [exam_id]
    assert examinations.get_exam(actor=doctor, examination_id=exam_id).status == 'pending'
