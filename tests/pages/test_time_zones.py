"""Pages show stored UTC times in the time zone that the browser sent in the `tz` cookie."""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui
from nicegui.testing import User

from secondopinion import db
from secondopinion.models import Examination
from secondopinion.pages.formatting import TIME_ZONE_COOKIE
from secondopinion.services import examinations, sessions
from tests.conftest import open_session
from tests.services.flow import paid

SUBMITTED = datetime(2026, 12, 5, 13, 5, tzinfo=UTC)
PAID = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)


def _set_times(exam_id: str) -> None:
    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        assert exam is not None
        exam.created_at = SUBMITTED
        exam.submitted_at = SUBMITTED
        exam.paid_at = PAID


def _browser(user: User, user_id: int, zone: str | None) -> None:
    user.http_client.cookies.set(sessions.COOKIE_NAME, open_session(user_id))
    if zone is not None:
        user.http_client.cookies.set(TIME_ZONE_COOKIE, zone)


async def test_exam_page_in_browser_zone(user: User, make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    _set_times(exam_id)
    _browser(user, patient.user_id, 'Europe/Zurich')

    await user.open(f'/exams/{exam_id}')
    await user.should_see('5 Dec 2026, 14:05 (Europe/Zurich)')
    # Summer time, and a day later than in UTC.
    await user.should_see('2 Jul 2026, 00:30 (Europe/Zurich)')
    await user.should_not_see('(UTC)')


async def test_exam_list_in_browser_zone(user: User, make_patient):
    patient = make_patient()
    _set_times(paid(patient))
    _browser(user, patient.user_id, 'America/New_York')

    await user.open('/exams')
    await user.should_see('Created 5 Dec 2026, 08:05 (America/New_York)')
    await user.should_see('Waiting for a radiologist')


async def test_unknown_zone_shows_utc(user: User, make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    _set_times(exam_id)
    _browser(user, patient.user_id, 'Nowhere/Atlantis')

    await user.open(f'/exams/{exam_id}')
    await user.should_see('5 Dec 2026, 13:05 (UTC)')


async def test_missing_zone_shows_utc(user: User, make_patient):
    patient = make_patient()
    exam_id = paid(patient)
    _set_times(exam_id)
    _browser(user, patient.user_id, None)

    await user.open(f'/exams/{exam_id}')
    await user.should_see('5 Dec 2026, 13:05 (UTC)')


async def test_doctor_cases_in_browser_zone(user: User, make_patient, make_doctor):
    patient = make_patient()
    doctor = make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        assert exam is not None
        exam.accepted_at = SUBMITTED
    _browser(user, doctor.user_id, 'Asia/Tokyo')

    await user.open('/doctor/cases')
    await user.should_see('Accepted 5 Dec 2026, 22:05 (Asia/Tokyo)')
    await user.should_see('Under review')


async def test_admin_tables_in_browser_zone(user: User, make_patient, admin):
    patient = make_patient()
    _set_times(paid(patient))
    _browser(user, admin.user_id, 'Australia/Sydney')

    await user.open('/admin')
    await user.should_see('Admin panel')
    exams = user.find(marker='exams-table').elements.pop()
    assert isinstance(exams, ui.table)
    assert exams.rows[0]['created'] == '6 Dec 2026, 00:05 (Australia/Sydney)'
    assert exams.rows[0]['status'] == 'Waiting for a radiologist'
    audit_table = user.find(marker='audit-table').elements.pop()
    assert isinstance(audit_table, ui.table)
    assert audit_table.columns[0]['label'] == 'Time (Australia/Sydney)'
    assert user.find(marker='audit-from').elements.pop().props['label'] == 'From (Australia/Sydney)'
