"""The doctors' board in a real browser: a case that a patient pays for appears without a reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from .conftest import (
    DESKTOP,
    PHONE,
    create_doctor_in_admin_panel,
    register_patient,
    save_screenshot,
    sign_in,
    submit_paid_examination,
    unique_email,
)

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect

# The board checks for changes every 0.3 s, and the rest of the time leaves room for a slow CI machine.
LIVE_UPDATE_TIMEOUT_MS = 5_000


def test_board_shows_paid_case_without_reload(open_page: Callable[..., sync_api.Page]) -> None:
    question = f'Is the meniscus of my left knee torn? (board case {time.time_ns()})'

    admin = open_page(**DESKTOP)
    doctor_email = unique_email('doctor')
    create_doctor_in_admin_panel(admin, name='Dr. Grace Hopper', email=doctor_email)
    save_screenshot(admin, 'desktop-admin-doctors')

    # The same doctor has the board open on a desktop and on a phone.
    boards = {'desktop': open_page(**DESKTOP), 'phone': open_page(**PHONE)}
    for board in boards.values():
        sign_in(board, doctor_email)
        board.wait_for_url('**/doctor')
        expect(board.get_by_text('Paid cases waiting for a radiologist', exact=False)).to_be_visible()
        expect(board.get_by_text(question)).to_have_count(0)
        # A reload would drop this variable, so its survival shows that the board updated in place.
        board.evaluate('window.boardOpenedBeforePayment = true')

    patient = open_page(**DESKTOP)
    patient.goto('/register')
    register_patient(patient, name='Ines Knee', email=unique_email('knee'))
    submit_paid_examination(patient, images=[Path(get_testdata_file('MR_small.dcm'))],
                            modality='MRI (magnetic resonance)', body_part='Left knee', question=question)

    for device, board in boards.items():
        case = board.locator('.q-card', has_text=question)
        expect(case, f'the paid case on the {device} board').to_be_visible(timeout=LIVE_UPDATE_TIMEOUT_MS)
        expect(case).to_contain_text('MR Left knee')
        expect(case).to_contain_text('1 image')
        # Each Accept button's accessible name includes its case, so a screen reader's list of buttons
        # distinguishes the cases.
        expect(case.get_by_role('button', name='Accept: MR Left knee', exact=True)).to_be_visible()
        assert board.evaluate('window.boardOpenedBeforePayment') is True, f'the {device} board was reloaded'
        save_screenshot(board, f'{device}-doctor-board')


def test_board_updates_rows_in_place(open_page: Callable[..., sync_api.Page]) -> None:
    run = time.time_ns()
    cases = [  # modality label, body part, question, urgent
        ('CT (computed tomography)', 'Chest', f'Is this lung nodule malignant? (in-place case {run})', True),
        ('MRI (magnetic resonance)', 'Right knee', f'Is the cruciate ligament torn? (in-place case {run})', False),
        ('X-ray (computed radiography)', 'Left wrist', f'Is the scaphoid fractured? (in-place case {run})', False),
    ]
    emails = [unique_email('doctor'), unique_email('doctor')]
    # One admin page each, because the helper starts at /login, which sends a signed-in admin on to /admin.
    create_doctor_in_admin_panel(open_page(**DESKTOP), name='Dr. Ada Lovelace', email=emails[0])
    create_doctor_in_admin_panel(open_page(**DESKTOP), name='Dr. Alan Turing', email=emails[1])
    accepting, watching = open_page(**DESKTOP), open_page(**DESKTOP)
    for board, email in ((accepting, emails[0]), (watching, emails[1])):
        sign_in(board, email)
        board.wait_for_url('**/doctor')

    patient = open_page(**DESKTOP)
    patient.goto('/register')
    register_patient(patient, name='Noah Several', email=unique_email('several'))
    for modality, body_part, question, urgent in cases:
        submit_paid_examination(patient, images=[Path(get_testdata_file('MR_small.dcm'))], modality=modality,
                                body_part=body_part, question=question, urgent=urgent)
    for board in (accepting, watching):
        for _modality, _body_part, question, _urgent in cases:
            expect(board.locator('.q-card', has_text=question)).to_be_visible(timeout=LIVE_UPDATE_TIMEOUT_MS)
    chest_card = watching.locator('.q-card', has_text=cases[0][2])
    expect(chest_card).to_contain_text('URGENT')
    save_screenshot(watching, 'desktop-doctor-board-several-cases')

    # Remember the DOM node of the wrist case: when the board updates in place, the same node stays.
    wrist_card = watching.locator('.q-card', has_text=cases[2][2])
    wrist_card.evaluate('card => { window.wristCard = card; }')

    accepting.get_by_label('Body part contains').fill('knee')
    knee_card = accepting.locator('.q-card', has_text=cases[1][2])
    expect(accepting.locator('.q-card', has_text=cases[2][2])).to_have_count(0)
    knee_card.get_by_role('button', name='Accept').click()
    accepting.wait_for_url('**/doctor/cases/*')

    expect(watching.locator('.q-card', has_text=cases[1][2])).to_have_count(0, timeout=LIVE_UPDATE_TIMEOUT_MS)
    assert wrist_card.evaluate('card => card === window.wristCard'), 'the wrist case card was replaced'
    assert watching.evaluate('document.body.contains(window.wristCard)'), 'the wrist case card left the page'
