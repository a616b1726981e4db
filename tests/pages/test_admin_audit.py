"""Audit rows written by pages and routes, and the admin panel's Audit log tab with its filters and CSV."""

from __future__ import annotations

import csv
import io

from nicegui import ui
from nicegui.testing import User
from sqlalchemy import select

from secondopinion import db
from secondopinion.models import AuditEvent, UserSession
from secondopinion.services import audit, examinations
from tests.services.flow import paid

from .helpers import open_page, set_value, sign_in
from .test_access import REPORT, _paid_with_image


def events(action: str) -> list[AuditEvent]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def session_address(user_id: int) -> str | None:
    """The client address the app stored for the user's browser session at sign-in."""
    with db.session_scope() as session:
        return session.scalars(select(UserSession.client_address).where(UserSession.user_id == user_id)
                               .order_by(UserSession.id.desc())).first()


def table_rows(user: User) -> list[dict]:
    table = user.find(marker='audit-table').elements.pop()
    assert isinstance(table, ui.table)
    return table.rows


async def test_other_patient_page_and_zip_denied(user: User, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    bea = make_patient('Bea Other', email='bea@example.org')
    exam_id = _paid_with_image(alice)

    await sign_in(user, 'bea@example.org')
    await user.should_see('You have no examinations yet.')
    assert (await open_page(user, f'/exams/{exam_id}')).status == 404
    await user.should_see(marker='not-found')
    await user.should_not_see('Is the nodule in the right upper lobe benign?')
    response = await user.http_client.get(f'/api/exams/{exam_id}/images.zip')
    assert response.status_code == 404
    # A made-up id gets the same response and writes no row.
    missing = await user.http_client.get(f'/api/exams/{"0" * 32}/images.zip')
    assert (missing.status_code, missing.content) == (404, response.content)

    denied = events('access.denied')
    address = session_address(bea.user_id)
    assert address
    assert [(row.actor_user_id, row.object_type, row.object_id, row.client_address, row.detail['where'])
            for row in denied] == [
        (bea.user_id, 'examination', exam_id, address, f'/exams/{exam_id}'),
        (bea.user_id, 'examination', exam_id, address, f'/api/exams/{exam_id}/images.zip'),
    ]
    assert events('examination.viewed') == []


async def test_patient_opening_admin_denied(user: User, make_patient):
    patient = make_patient('Alice', email='alice@example.org')
    await sign_in(user, 'alice@example.org')
    await user.should_see('You have no examinations yet.')
    assert (await open_page(user, '/admin')).status == 404
    await user.should_see(marker='not-found')
    await user.should_not_see('Audit log')

    assert [(row.actor_user_id, row.object_type, row.object_id, row.detail)
            for row in events('access.denied')] == [(patient.user_id, 'page', '/admin',
                                                      {'role': 'patient', 'where': '/admin'})]


async def test_doctor_pages_record_views(user: User, make_patient, make_doctor):
    from secondopinion.services import reports

    alice = make_patient('Alice', email='alice@example.org')
    doctor = make_doctor(email='doc@example.org')
    exam_id = _paid_with_image(alice)
    examinations.accept(actor=doctor, examination_id=exam_id)

    await sign_in(user, 'doc@example.org')
    await user.should_see('Pending examinations')
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see(marker='open-viewer')
    await user.open(f'/doctor/cases/{exam_id}/viewer')
    await user.should_see('CT Chest: images')
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    await user.open(f'/doctor/cases/{exam_id}')
    await user.should_see('Probably benign.')

    rows = [(row.action, row.actor_user_id, row.detail.get('page')) for row in
            events('examination.viewed') + events('viewer.opened') + events('report.viewed')]
    assert rows == [('examination.viewed', doctor.user_id, 'review'), ('examination.viewed', doctor.user_id, 'review'),
                    ('viewer.opened', doctor.user_id, None), ('report.viewed', doctor.user_id, 'review')]
    address = session_address(doctor.user_id)
    assert all(row.client_address == address for row in events('viewer.opened') + events('report.viewed'))


async def test_admin_filters_the_audit_log(user: User, admin, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    bea = make_patient('Bea Other', email='bea@example.org')
    exam_id = paid(alice)
    for number in range(55):
        audit.record_now(alice, 'test.event', 'thing', number)
    audit.record_denied(bea, 'examination', exam_id, reason='not visible to this user')

    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find('Audit log').click()
    await user.should_see(marker='audit-table')
    await user.should_see(marker='audit-page')

    set_value(user, 'audit-action', 'test.event')
    await user.should_see('Page 1 of 2 (55 events)')
    rows = table_rows(user)
    assert len(rows) == 50
    assert rows[0]['object'] == 'thing 54'
    user.find(marker='audit-older').click()
    await user.should_see('Page 2 of 2 (55 events)')
    assert [row['object'] for row in table_rows(user)] == [f'thing {n}' for n in range(4, -1, -1)]

    set_value(user, 'audit-action', '')
    user.find(marker='audit-user').type('bea@example.org')
    user.find(marker='audit-search').click()
    # Bea's own refusal, and the registration of her account, which is an event about her.
    await user.should_see('Page 1 of 1 (2 events)')
    assert [(row['user'], row['action'], row['object']) for row in table_rows(user)] == \
        [('bea@example.org', 'access.denied', f'examination {exam_id}'),
         ('system', 'patient.registered', f'user {bea.user_id}')]

    user.find(marker='audit-user').clear().type('bea')
    user.find(marker='audit-search').click()
    await user.should_see('User "bea" is neither a user id (digits) nor an email address.')


async def test_admin_exports_filtered_rows_as_csv(user: User, admin, make_patient):
    alice = make_patient('Alice', email='alice@example.org')
    exam_id = paid(alice)
    audit.record_denied(alice, 'examination', exam_id, reason='test')

    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find('Audit log').click()
    await user.should_see(marker='audit-export')
    set_value(user, 'audit-object-type', 'examination')
    user.find(marker='audit-object-id').type(exam_id)
    user.find(marker='audit-export').click()
    response = await user.download.next()

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {row['object_id'] for row in rows} == {exam_id}
    assert 'access.denied' in {row['action'] for row in rows}
    assert 'examination.submitted' in {row['action'] for row in rows}
    assert events('audit_log.exported')[0].actor_user_id == admin.user_id


async def test_admin_date_filter_rejects_invalid_date(user: User, admin):
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    user.find('Audit log').click()
    await user.should_see(marker='audit-table')
    set_value(user, 'audit-from', '2026-13-40')
    await user.should_see('The "from" date "2026-13-40" is invalid: choose a date as YYYY-MM-DD.')
