"""The admin panel: doctor accounts, examinations, incomes and the outbox."""

from __future__ import annotations

from nicegui.testing import User
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import Doctor
from secondopinion.services import examinations
from tests.services.flow import paid

from .helpers import set_value, sign_in


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


async def test_deactivate_and_reactivate_doctor(user: User, admin, make_doctor):
    make_doctor(email='doc@example.org')
    await _open_admin(user)
    user.find(marker='toggle-doctor-doc@example.org').click()
    await user.should_see('deactivated')
    with db.session_scope() as session:
        assert session.scalars(select(Doctor.is_active)).one() is False
    user.find(marker='toggle-doctor-doc@example.org').click()
    await user.should_see('active')
    with db.session_scope() as session:
        assert session.scalars(select(Doctor.is_active)).one() is True


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
