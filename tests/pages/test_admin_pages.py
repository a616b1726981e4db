"""The admin panel: doctor accounts, examinations, incomes and the outbox."""

from __future__ import annotations

import asyncio
import re

from nicegui.testing import User
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import Doctor, User as UserRow
from secondopinion.services import accounts, examinations
from tests.services.flow import paid

from .conftest import RETRIES
from .helpers import dialog_is_open, dialog_text, set_value, sign_in


def _doctor_count() -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(Doctor)) or 0


async def _open_admin(user: User) -> None:
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')


async def test_create_doctor_missing_license(user: User, admin):
    await _open_admin(user)
    user.find(marker='doctor-name').type('Dr. No License')
    user.find(marker='doctor-email').type('nolicense@example.org')
    user.find(marker='create-doctor-button').click()
    await user.should_see('License number is missing.')
    assert _doctor_count() == 0


async def test_create_doctor_duplicate_license(user: User, admin, make_doctor):
    make_doctor(email='first@example.org')
    with db.session_scope() as session:
        license_number = session.scalars(select(Doctor.license_number)).one()
    await _open_admin(user)
    user.find(marker='doctor-name').type('Dr. Copy')
    user.find(marker='doctor-email').type('copy@example.org')
    user.find(marker='doctor-license').type(license_number)
    user.find(marker='create-doctor-button').click()
    await user.should_see(f'A doctor with license number {license_number} already exists.')
    assert _doctor_count() == 1


async def wait_for_badge(user: User, marker: str, state: str) -> None:
    """Wait until the account state badge reads `state`. Closed dialogs also contain the word "deactivated"."""
    texts: list[str] = []
    for _ in range(RETRIES):
        texts = [badge.text for badge in user.find(marker=marker).elements]
        if texts == [state]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f'the badge {marker} reads {texts}, expected {state!r}')


def _doctor_active() -> bool:
    with db.session_scope() as session:
        return session.scalars(select(Doctor.is_active)).one()


async def test_deactivate_doctor_asks_first(user: User, admin, make_doctor):
    make_doctor('Dr. Dana Scully', email='doc@example.org')
    await _open_admin(user)
    assert not dialog_is_open(user, 'doctor-confirm')

    user.find(marker='toggle-doctor-doc@example.org').click()
    await user.should_see('Deactivate the account of Dr. Dana Scully?')
    assert dialog_is_open(user, 'doctor-confirm')
    text = dialog_text(user, 'doctor-confirm')
    assert 'Dr. Dana Scully (doc@example.org) is signed out at once on every device' in text
    assert 'cannot sign in' in text
    assert 'You can reactivate the account' in text
    assert _doctor_active() is True

    user.find(marker='doctor-confirm-cancel').click()
    assert not dialog_is_open(user, 'doctor-confirm')
    assert _doctor_active() is True

    user.find(marker='toggle-doctor-doc@example.org').click()
    user.find(marker='doctor-confirm-confirm').click()
    await wait_for_badge(user, 'doctor-state-doc@example.org', 'deactivated')
    assert not dialog_is_open(user, 'doctor-confirm')
    assert _doctor_active() is False


async def test_reactivate_doctor_at_once(user: User, admin, make_doctor):
    doctor = make_doctor(email='doc@example.org')
    accounts.set_doctor_active(actor=admin, doctor_id=doctor.doctor_id, active=False)
    await _open_admin(user)
    await wait_for_badge(user, 'doctor-state-doc@example.org', 'deactivated')
    user.find(marker='toggle-doctor-doc@example.org').click()
    await wait_for_badge(user, 'doctor-state-doc@example.org', 'active')
    assert not dialog_is_open(user, 'doctor-confirm')
    assert _doctor_active() is True


async def test_examinations_and_patients_listed(user: User, admin, make_patient):
    patient = make_patient('Dora Patient', email='dora@example.org')
    paid(patient)
    await _open_admin(user)
    user.find('Patients').click()
    await user.should_see('dora@example.org')
    user.find('Examinations').click()
    await user.should_see('Waiting for a radiologist: 1')
    user.find('Incomes').click()
    await user.should_see(marker='ledger-months-EUR')
    await user.should_see('45.00 EUR')
    user.find('Notifications').click()
    await user.should_see('Payment received to dora@example.org', retries=20)


async def test_incomes_filters_and_csv(user: User, admin, make_patient, make_doctor):
    patient = make_patient('Dora Patient', email='dora@example.org')
    doctor = make_doctor('Dr. Bob Radiologist', email='bob@example.org')
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    paid(patient)
    await _open_admin(user)
    user.find('Incomes').click()
    await user.should_see(marker='ledger-totals-EUR')
    await user.should_see('300.00 EUR')  # two payments

    set_value(user, 'ledger-doctor', doctor.doctor_id)
    await user.should_see('150.00 EUR')
    await user.should_not_see('300.00 EUR')

    user.find(marker='ledger-export').click()
    response = await user.download.next()
    lines = response.content.decode().splitlines()
    assert lines[0] == 'id,created_at_utc,examination_id,payment_id,kind,amount,currency,doctor'
    assert sorted(line.split(',')[4] for line in lines[1:]) == ['payment', 'platform_fee']
    assert {line.split(',')[2] for line in lines[1:]} == {exam_id}

    set_value(user, 'ledger-from', '2001-01')
    set_value(user, 'ledger-to', '2001-02')
    await user.should_see(marker='ledger-empty')


def _patient_active(email: str) -> bool:
    with db.session_scope() as session:
        return session.scalars(select(UserRow.is_active).where(UserRow.email == email)).one()


async def test_patients_listed_once(user: User, admin, make_patient):
    patient = make_patient('Dora Patient', email='dora@example.org', phone='+41791112233')
    paid(patient)
    await _open_admin(user)
    user.find('Patients').click()
    await user.should_see(marker='patient-dora@example.org')
    # One row per patient: no second table or list repeats the address.
    panel = user.find(marker='patients-panel').elements.pop()
    assert len([element for element in user.find('dora@example.org').elements if panel in element.ancestors()]) == 1
    await user.should_not_see(marker='patients-table')
    details = user.find(marker='patient-details-dora@example.org').elements.pop().text
    assert 'born 17 May 1980' in details
    assert '+41791112233' in details
    assert '1 examination' in details
    assert re.search(r'registered \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} \(UTC\)', details), details
    await user.should_see(marker='toggle-patient-dora@example.org')
    await user.should_see(marker='patient-state-dora@example.org')


async def test_deactivate_patient_asks_first(user: User, admin, make_patient):
    make_patient('Dora Patient', email='dora@example.org')
    await _open_admin(user)
    user.find('Patients').click()
    user.find(marker='toggle-patient-dora@example.org').click()
    await user.should_see('Deactivate the account of Dora Patient?')
    assert dialog_is_open(user, 'patient-confirm')
    text = dialog_text(user, 'patient-confirm')
    assert 'Dora Patient (dora@example.org) is signed out at once on every device' in text
    assert 'cannot sign in' in text
    assert 'You can reactivate the account' in text
    assert _patient_active('dora@example.org') is True

    user.find(marker='patient-confirm-cancel').click()
    assert not dialog_is_open(user, 'patient-confirm')
    assert _patient_active('dora@example.org') is True

    user.find(marker='toggle-patient-dora@example.org').click()
    user.find(marker='patient-confirm-confirm').click()
    await wait_for_badge(user, 'patient-state-dora@example.org', 'deactivated')
    assert _patient_active('dora@example.org') is False

    # Reactivation takes effect on the click, without a question.
    user.find(marker='toggle-patient-dora@example.org').click()
    await wait_for_badge(user, 'patient-state-dora@example.org', 'active')
    assert not dialog_is_open(user, 'patient-confirm')
    assert _patient_active('dora@example.org') is True


async def test_patients_search_and_pages(user: User, admin, make_patient):
    for number in range(26):
        make_patient(f'Patient {number:02d}', email=f'p{number:02d}@example.org')
    make_patient('Zoe Searched', email='zoe@example.org')
    await _open_admin(user)
    user.find('Patients').click()
    await user.should_see('27 patients')
    # Newest first, 25 on a page: the two oldest are on page 2.
    await user.should_see(marker='patient-zoe@example.org')
    await user.should_not_see(marker='patient-p00@example.org')
    set_value(user, 'patients-pages', 2)
    await user.should_see(marker='patient-p00@example.org')
    await user.should_not_see(marker='patient-zoe@example.org')

    set_value(user, 'patient-search', 'zoe')
    await user.should_see('1 patient')
    await user.should_see(marker='patient-zoe@example.org')
    await user.should_not_see(marker='patient-p25@example.org')
    await user.should_not_see(marker='patients-pages')
    set_value(user, 'patient-search', 'nobody')
    await user.should_see('No patients match.')
