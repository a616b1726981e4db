"""Access control by URL in a real browser: another patient or a visitor gets "not found" and none of the data."""

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


def _assert_hides_owner_data(text: str, secrets: dict[str, str], where: str) -> None:
    for label, value in secrets.items():
        assert value not in text, f'{where} contains the owner\'s {label}'


def test_exam_urls_hidden_from_others(open_page: Callable[..., sync_api.Page]) -> None:
    question = f'Private question of patient A: is the lesion in my liver malignant? ({time.time_ns()})'
    email_a = unique_email('anna')
    secrets = {'clinical question': question, 'name': 'Anna Privatova', 'email': email_a}

    # Patient A pays for an examination, and a doctor finalizes its report, so every URL below exists.
    owner = open_page(**DESKTOP)
    owner.goto('/register')
    register_patient(owner, name='Anna Privatova', email=email_a)
    exam_id = submit_paid_examination(owner, images=[Path(get_testdata_file('CT_small.dcm'))],
                                      modality='CT (computed tomography)', body_part='Abdomen', question=question)

    admin = open_page(**DESKTOP)
    doctor_email = unique_email('doctor')
    create_doctor_in_admin_panel(admin, name='Dr. Alan Turing', email=doctor_email)
    doctor = open_page(**DESKTOP)
    sign_in(doctor, doctor_email)
    doctor.locator('.q-card', has_text=question).get_by_role('button', name='Accept').click()
    doctor.wait_for_url(f'**/doctor/cases/{exam_id}')
    doctor.get_by_label('Findings').fill('A 12 mm cyst in segment 7.')
    doctor.get_by_label('Impression').fill('Simple hepatic cyst, benign.')
    doctor.get_by_role('button', name='Finalize report').click()
    doctor.get_by_role('button', name='Finalize and sign').click()
    expect(doctor.get_by_text('SHA-256 of the first PDF', exact=False)).to_be_visible()
    save_screenshot(doctor, 'desktop-doctor-review-finalized')

    owner.goto(f'/exams/{exam_id}')
    expect(owner.get_by_text('Simple hepatic cyst, benign.')).to_be_visible()
    save_screenshot(owner, 'desktop-examination-with-report')
    downloads = {'report.pdf': b'%PDF', 'images.zip': b'PK'}
    for name, signature in downloads.items():
        response = owner.request.get(f'/api/exams/{exam_id}/{name}')
        assert response.status == 200, f'the owner cannot download {name}'
        assert response.body().startswith(signature), f'{name} of the owner is not a {name.split(".")[1]} file'

    # Patient B, signed in on a phone, types A's URLs.
    other = open_page(**PHONE)
    other.goto('/register')
    register_patient(other, name='Bruno Curioso', email=unique_email('bruno'))
    for path in (f'/exams/{exam_id}', f'/exams/{exam_id}/edit'):
        response = other.goto(path)
        assert response is not None
        assert response.status == 404, f'{path} returned {response.status} to patient B'
        expect(other.get_by_text('Examination not found.')).to_be_visible()
        _assert_hides_owner_data(other.content(), secrets, f'{path} for patient B')
    save_screenshot(other, 'phone-examination-not-found')

    for name in downloads:
        path = f'/api/exams/{exam_id}/{name}'
        response = other.goto(path)
        assert response is not None
        assert response.status == 404, f'{path} returned {response.status} to patient B'
        _assert_hides_owner_data(response.text(), secrets, f'{path} for patient B')

    for path in ('/doctor', '/doctor/cases', f'/doctor/cases/{exam_id}', '/admin'):
        response = other.goto(path)
        assert response is not None
        assert response.status == 404, f'{path} returned {response.status} to patient B'
        expect(other.get_by_text('Page not found.'), f'{path} for patient B').to_be_visible()
        _assert_hides_owner_data(other.content(), secrets, f'{path} for patient B')
    save_screenshot(other, 'phone-admin-not-found')

    # A visitor who is not signed in is sent to the sign-in page, and the downloads do not exist for them.
    visitor = open_page(**DESKTOP)
    for path in (f'/exams/{exam_id}', '/doctor', '/admin'):
        visitor.goto(path)
        visitor.wait_for_url('**/login')
        _assert_hides_owner_data(visitor.content(), secrets, f'{path} for a visitor')
    for name in downloads:
        response = visitor.request.get(f'/api/exams/{exam_id}/{name}')
        assert response.status == 404, f'{name} returned {response.status} to a visitor'
        _assert_hides_owner_data(response.text(), secrets, f'{name} for a visitor')
