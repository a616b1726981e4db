"""The promised report time: the patient sees it, and admins see the cases past it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from nicegui.testing import User

from secondopinion import db
from secondopinion.models import Examination
from secondopinion.pages.formatting import format_time
from tests.services.flow import paid

from .helpers import sign_in


def _backdate(exam_id: str, hours: float) -> None:
    with db.session_scope() as session:
        exam = session.get(Examination, exam_id)
        exam.paid_at -= timedelta(hours=hours)
        exam.due_at -= timedelta(hours=hours)


def _due_at(exam_id: str):  # noqa: ANN202
    with db.session_scope() as session:
        return session.get(Examination, exam_id).due_at


async def test_patient_sees_promised_time(user: User, make_patient):
    patient = make_patient(email='patient@example.org')
    exam_id = paid(patient, urgency='urgent')
    await sign_in(user, 'patient@example.org')
    await user.open(f'/exams/{exam_id}')

    await user.should_see(f'We promised your report by {format_time(_due_at(exam_id), ZoneInfo("UTC"))}.')
    await user.should_see('Report promised by')


async def test_admin_sees_only_overdue_cases(user: User, admin, make_patient, make_doctor):
    patient = make_patient()
    late = paid(patient, modality='CT', body_part='Late chest', urgency='urgent')
    on_time = paid(patient, modality='CT', body_part='Fresh head')
    _backdate(late, 26)  # promised within 24 h, so 2 h overdue
    await sign_in(user, 'admin@example.org')

    await user.should_see('Past their promised report time')
    await user.should_see(f'{late[:8]} CT Late chest')
    await user.should_see('overdue by 2 h 0 min')
    await user.should_not_see(f'{on_time[:8]} CT Fresh head')


async def test_admin_without_overdue_cases(user: User, admin, make_patient):
    paid(make_patient())
    await sign_in(user, 'admin@example.org')

    await user.should_see('No case is past its promise.')
