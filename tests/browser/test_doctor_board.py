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
        expect(case.get_by_role('button', name='Accept')).to_be_visible()
        assert board.evaluate('window.boardOpenedBeforePayment') is True, f'the {device} board was reloaded'
        save_screenshot(board, f'{device}-doctor-board')
