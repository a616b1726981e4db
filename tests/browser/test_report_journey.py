"""From registration to reading the report, on a phone and on a desktop, with the questions and a share link.

With SECONDOPINION_SCREENSHOT_DIR set, every step is saved as `<device>-journey-NN-<step>.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    DESKTOP,
    PHONE,
    assert_no_horizontal_scroll,
    create_doctor_in_admin_panel,
    register_patient,
    save_screenshot,
    sign_in,
    submit_paid_examination,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


@pytest.mark.parametrize('device', ['phone', 'desktop'])
def test_report_journey(open_page: Callable[..., sync_api.Page], device: str) -> None:
    viewport = PHONE if device == 'phone' else DESKTOP
    question = f'Is the nodule in my right lung benign? ({device} journey {time.time_ns()})'
    steps = iter(range(1, 100))

    def step(page: sync_api.Page, name: str) -> None:
        if device == 'phone':
            assert_no_horizontal_scroll(page)
        save_screenshot(page, f'{device}-journey-{next(steps):02d}-{name}')

    patient = open_page(**viewport)
    patient.goto('/register')
    register_patient(patient, name='Lena Lungwitz', email=unique_email(f'journey-{device}'))
    step(patient, 'registered')
    exam_id = submit_paid_examination(patient, images=[Path(get_testdata_file('CT_small.dcm'))],
                                      modality='CT (computed tomography)', body_part='Chest', question=question)
    expect(patient.get_by_text('We promised your report by', exact=False)).to_be_visible()
    step(patient, 'paid')

    doctor_email = unique_email('journey-doctor')
    create_doctor_in_admin_panel(open_page(**DESKTOP), name='Dr. Rosalind Franklin', email=doctor_email)
    doctor = open_page(**DESKTOP)
    sign_in(doctor, doctor_email)
    card = doctor.locator('.q-card', has_text=question)
    expect(card).to_contain_text('due in')
    save_screenshot(doctor, f'{device}-journey-doctor-board')
    card.get_by_role('button', name='Accept').click()
    doctor.wait_for_url(f'**/doctor/cases/{exam_id}')
    doctor.get_by_label('Findings').fill('A 6 mm solid nodule in the right upper lobe, smooth margins.')
    doctor.get_by_label('Impression').fill('Probably benign nodule.')
    doctor.get_by_role('button', name='Finalize report').click()
    doctor.get_by_role('button', name='Finalize and sign').click()
    expect(doctor.get_by_text('SHA-256 of the first PDF', exact=False)).to_be_visible()

    # The patient reads the report and asks a follow-up question.
    patient.goto(f'/exams/{exam_id}')
    expect(patient.get_by_text('Probably benign nodule.')).to_be_visible()
    step(patient, 'report')
    patient.get_by_label('Your question').fill('Should I stop smoking before the follow-up CT?')
    patient.get_by_role('button', name='Send question').click()
    expect(patient.get_by_text('Waiting for the radiologist\'s answer.')).to_be_visible()
    step(patient, 'question-asked')

    doctor.goto(f'/doctor/cases/{exam_id}')
    doctor.get_by_label('Your answer').fill('Yes: stopping lowers the risk of new nodules.')
    doctor.get_by_role('button', name='Send answer').click()
    expect(doctor.get_by_text('Yes: stopping lowers the risk of new nodules.')).to_be_visible()

    patient.goto(f'/exams/{exam_id}')
    expect(patient.get_by_text('Yes: stopping lowers the risk of new nodules.')).to_be_visible()
    step(patient, 'answer-read')

    # The patient shares the examination with a family doctor, who opens the link without an account.
    patient.get_by_label('For whom (optional)').fill('Dr. Meier, family doctor')
    patient.get_by_label('Access code (optional)').fill('4711')
    patient.get_by_role('button', name='Create link').click()
    address = patient.get_by_label('Share link').input_value()
    assert '/shared/' in address
    step(patient, 'share-link-created')

    physician = open_page(**viewport)
    physician.goto(address)
    physician.get_by_label('Access code').fill('4711')
    physician.get_by_role('button', name='Open').click()
    expect(physician.get_by_text('Lena Lungwitz')).to_be_visible()
    expect(physician.get_by_role('button', name='Download the report (PDF)')).to_be_visible()
    expect(physician.get_by_role('img', name='Selected slice')).to_be_visible()
    step(physician, 'shared-view')

    patient.reload()
    expect(patient.get_by_text('opened 1 time', exact=False)).to_be_visible()
