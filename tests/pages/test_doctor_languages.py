"""Doctor pages in Turkish: the board's countdown, the case page, the report editor and the viewer."""

from __future__ import annotations

import sys
from datetime import timedelta

from nicegui.testing import User

from secondopinion.models.base import utcnow
from secondopinion.services import accounts, examinations, profile
from tests.services.flow import paid

from .helpers import board_case, sign_in, wait_for_board_case
from .test_board_page import _due_text, _wait_until
from .test_viewer_page import exam_with_images, open_viewer


async def _turkish_doctor(user: User, make_doctor):  # noqa: ANN001, ANN202
    doctor = make_doctor('Dr. Ayşe Demir', email='ayse@example.org')
    profile.set_language(actor=doctor, language='tr')
    await sign_in(user, 'ayse@example.org')
    return accounts.get_actor(doctor.user_id)


async def test_board_countdown_in_turkish(user: User, make_patient, make_doctor, monkeypatch):
    board_module = sys.modules['secondopinion.pages.board']
    monkeypatch.setattr(board_module, 'REFRESH_SECONDS', 0.0)
    patient = make_patient()
    routine, urgent = paid(patient, body_part='Chest'), paid(patient, body_part='Head', urgency='urgent')
    await _turkish_doctor(user, make_doctor)

    await user.should_see('Bekleyen tetkikler')
    await wait_for_board_case(user, urgent)
    await user.should_see('Üstlen')
    await user.should_see('ACİL')
    await user.should_see('2 bekliyor')
    await user.should_not_see('Pending examinations')
    # A routine case is promised within 72 h, so 2 days and 23 full hours are left.
    assert _due_text(user, routine) == '2 gün 23 sa kaldı'
    assert _due_text(user, urgent) == '23 sa 59 dk kaldı'
    assert board_case(user, routine).waiting == '0 görüntü, 0 dk bekliyor,'

    overdue = utcnow() + timedelta(hours=25)
    monkeypatch.setattr(board_module, 'utcnow', lambda: overdue)
    await _wait_until(lambda: _due_text(user, urgent) == '1 sa 0 dk gecikti')


async def test_case_page_and_editor_in_turkish(user: User, make_patient, make_doctor):
    doctor = await _turkish_doctor(user, make_doctor)
    exam_id = paid(make_patient(), modality='CT', body_part='Chest')
    examinations.accept(actor=doctor, examination_id=exam_id)

    await user.open('/doctor/cases')
    await user.should_see('Vakalarım')
    await user.should_see('Aylara göre kazanç (UTC)')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see('Hasta ve istek')
    await user.should_see('Aciliyet')
    await user.should_see('Rutin')
    for section in ('Teknik', 'Bulgular', 'Sonuç', 'Öneriler'):
        await user.should_see(section)
    await user.should_see('Bir şablondan başla')
    await user.should_see('Toraks BT')
    await user.should_see('Taslağı kaydet')
    await user.should_see('Raporu kesinleştir')
    await user.should_not_see('Findings')
    await user.should_not_see('Patient and request')

    user.find(marker='use-template').click()
    await user.should_see('Teknik, Bulgular, Sonuç, "Toraks BT" şablonundan dolduruldu.')


async def test_viewer_presets_in_turkish(user: User, make_patient, make_doctor, tmp_path):
    doctor = await _turkish_doctor(user, make_doctor)
    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await open_viewer(user, exam_id)

    await user.should_see(': görüntüler')
    await user.should_see('Dosyanın penceresi')
    for preset in ('Yumuşak doku', 'Akciğer', 'Kemik', 'Beyin'):
        await user.should_see(preset)
    await user.should_see('Kesit 1 / 1')
    await user.should_see('Vakaya dön')
    await user.should_not_see('Soft tissue')


async def test_english_doctor_sees_english(user: User, make_patient, make_doctor, tmp_path):
    doctor = make_doctor(email='doctor@example.org')
    routine = paid(make_patient(), body_part='Chest')
    await sign_in(user, 'doctor@example.org')
    await user.should_see('Pending examinations')
    await wait_for_board_case(user, routine)
    assert _due_text(user, routine) == 'due in 2 days 23 h'
    assert board_case(user, routine).waiting == '0 images, waiting 0 min,'

    examinations.accept(actor=doctor, examination_id=routine)
    await user.open(f'/doctor/cases/{routine}')
    await user.should_see('Patient and request')
    await user.should_see('Findings')
    await user.should_see('CT chest')
    await user.should_not_see('Bulgular')

    exam_id = exam_with_images(make_patient(), tmp_path)
    examinations.accept(actor=doctor, examination_id=exam_id)
    await open_viewer(user, exam_id)
    await user.should_see('Soft tissue')
    await user.should_see('Slice 1 of 1')
    await user.should_not_see('Yumuşak doku')
