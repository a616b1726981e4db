"""The audit log: the rows that reads, refusals and admin actions write, the admin's filters and CSV, append-only."""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from secondopinion import db
from secondopinion.models import AuditEvent, User
from secondopinion.services import accounts, audit, audit_log, examinations, reports, studies, viewer
from secondopinion.services.actors import Actor
from secondopinion.services.errors import NotFoundError, PermissionDeniedError, ValidationError
from secondopinion.services.throttle import hash_key
from tests.conftest import PASSWORD
from tests.log_guard import GUARD, Watchlist, scan
from tests.services.flow import paid

REPORT = {'findings': 'Solid nodule, 6 mm.', 'impression': 'Probably benign.', 'recommendations': ''}
PDF = b'%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n'


def at(actor: Actor, address: str) -> Actor:
    """The actor as resolved from a browser at `address`, as pages and routes do."""
    return replace(actor, client_address=address)


def events(action: str | None = None) -> list[AuditEvent]:
    with db.session_scope() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(session.scalars(query))


def exam_with_image(patient: Actor, *, prior_report: Path | None = None) -> str:
    exam_id = examinations.create_draft(actor=patient)
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[('CT_small.dcm', Path(get_testdata_file('CT_small.dcm')))])
    if prior_report is not None:
        studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename='first-report.pdf',
                                      path=prior_report)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is the nodule benign?')
    examinations.submit(actor=patient, examination_id=exam_id)
    from secondopinion.services import payments
    ref = payments.start_checkout(actor=patient, examination_id=exam_id).rsplit('/', 1)[1]
    payments.complete_test_checkout(actor=patient, provider_ref=ref)
    return exam_id


def reported(patient: Actor, doctor: Actor, **kwargs: Path) -> str:
    exam_id = exam_with_image(patient, **kwargs)
    examinations.accept(actor=doctor, examination_id=exam_id)
    comparison = 'agrees' if kwargs.get('prior_report') else None
    reports.finalize(actor=doctor, examination_id=exam_id, comparison=comparison, **REPORT)
    return exam_id


# --- reads ---------------------------------------------------------------------------------------


def test_reads_write_one_row_each(make_patient, make_doctor, tmp_path):
    patient, doctor = make_patient(), make_doctor()
    prior = tmp_path / 'first.pdf'
    prior.write_bytes(PDF)
    exam_id = reported(patient, doctor, prior_report=prior)
    reports.add_addendum(actor=doctor, examination_id=exam_id, text='The nodule measures 7 mm, not 6 mm.')
    home = at(patient, '198.51.100.20')
    series_id = studies.get_study_summary(actor=home, examination_id=exam_id).studies[0].series[0].id
    prior_id = studies.get_study_summary(actor=home, examination_id=exam_id).prior_reports[0].id
    before = len(events())

    examinations.view_exam(actor=home, examination_id=exam_id, page='examination')
    report = reports.view_report(actor=home, examination_id=exam_id, page='examination')
    assert report is not None
    assert report.version == 2
    reports.open_report_pdf(actor=home, examination_id=exam_id, version=1)
    studies.open_prior_report(actor=home, examination_id=exam_id, file_id=prior_id)
    studies.stream_images_zip(actor=home, examination_id=exam_id)
    # Thumbnails belong to the page view already recorded: no row of their own.
    studies.get_thumbnail(actor=home, examination_id=exam_id, series_id=series_id)

    rows = events()[before:]
    assert [(row.action, row.detail) for row in rows] == [
        ('examination.viewed', {'page': 'examination'}),
        ('report.viewed', {'version': 2, 'page': 'examination'}),
        ('report.downloaded', {'version': 1, 'deidentified': False}),
        ('prior_report.downloaded', {'file_id': prior_id}),
        ('images.downloaded', {'files': 1, 'deidentified': False}),
    ]
    for row in rows:
        assert (row.actor_user_id, row.object_type, row.object_id, row.client_address) == \
            (patient.user_id, 'examination', exam_id, '198.51.100.20')
        assert row.at.tzinfo is not None
        assert abs(row.at - datetime.now(UTC)) < timedelta(minutes=5)


def test_viewer_opening_one_row(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = exam_with_image(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reading_room = at(doctor, '192.0.2.44')

    series = viewer.open_viewer(actor=reading_room, examination_id=exam_id)
    for _ in range(3):
        viewer.render_slice(actor=reading_room, examination_id=exam_id, series_id=series[0].id, index=0)
    examinations.view_exam(actor=reading_room, examination_id=exam_id, page='review', own_case=True)

    rows = [(row.action, row.actor_user_id, row.client_address) for row in events()
            if row.action in {'viewer.opened', 'examination.viewed'}]
    assert rows == [('viewer.opened', doctor.user_id, '192.0.2.44'),
                    ('examination.viewed', doctor.user_id, '192.0.2.44')]


def test_draft_report_view_not_recorded(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = exam_with_image(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.save_draft(actor=doctor, examination_id=exam_id, **REPORT)

    assert reports.view_report(actor=patient, examination_id=exam_id, page='examination') is None
    assert reports.view_report(actor=doctor, examination_id=exam_id, page='review').is_final is False
    assert events('report.viewed') == []


# --- refusals ------------------------------------------------------------------------------------


def test_other_patient_denied_and_recorded(make_patient):
    alice, bea = make_patient(), make_patient(name='Bea Other')
    exam_id = paid(alice)
    stranger = at(bea, '203.0.113.9')
    audit.set_where('/exams/' + exam_id)

    with pytest.raises(NotFoundError) as refused:
        examinations.get_exam(actor=stranger, examination_id=exam_id)
    with pytest.raises(NotFoundError) as missing:
        examinations.get_exam(actor=stranger, examination_id='0' * 32)
    audit.set_where(None)

    assert str(refused.value) == str(missing.value), 'a forbidden id must look like a missing one'
    denied = events('access.denied')
    assert [(row.actor_user_id, row.object_type, row.object_id, row.client_address) for row in denied] == \
        [(bea.user_id, 'examination', exam_id, '203.0.113.9')]
    assert denied[0].detail['where'] == '/exams/' + exam_id
    assert denied[0].detail['role'] == 'patient'


def test_file_and_report_refusals_recorded(make_patient, make_doctor, admin, tmp_path):
    alice, bea = make_patient(), make_patient(name='Bea Other')
    doctor, other_doctor = make_doctor(), make_doctor(name='Dr. Other')
    exam_id = reported(alice, doctor)
    series_id = studies.get_study_summary(actor=alice, examination_id=exam_id).studies[0].series[0].id
    draft_id = examinations.create_draft(actor=alice)
    pending_id = paid(alice)  # every doctor may open a pending case, but only its accepting doctor may download its report
    dicom = Path(get_testdata_file('CT_small.dcm'))

    attempts = [
        lambda: studies.stream_images_zip(actor=bea, examination_id=exam_id),
        lambda: studies.get_thumbnail(actor=bea, examination_id=exam_id, series_id=series_id),
        lambda: viewer.render_slice(actor=bea, examination_id=exam_id, series_id=series_id, index=0),
        lambda: reports.open_report_pdf(actor=other_doctor, examination_id=exam_id),
        lambda: reports.open_report_pdf(actor=other_doctor, examination_id=pending_id),
        lambda: studies.add_files(actor=admin, examination_id=draft_id, files=[('a.dcm', dicom)]),
        lambda: examinations.cancel(actor=other_doctor, examination_id=pending_id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            attempt()

    denied = [(row.actor_user_id, row.detail['reason']) for row in events('access.denied')]
    assert denied == [(bea.user_id, 'not visible to this user')] * 3 + [
        (other_doctor.user_id, 'not visible to this user'),
        (other_doctor.user_id, 'only the accepting doctor may download the report'),
        (admin.user_id, 'only the patient may change a draft'),
        (other_doctor.user_id, 'only the patient or an admin may cancel'),
    ]
    assert studies.get_study_summary(actor=alice, examination_id=draft_id).image_count == 0


# --- admin changes -------------------------------------------------------------------------------


def test_admin_changes_are_recorded_with_the_admin(admin, make_patient):
    office = at(admin, '192.0.2.10')
    doctor = accounts.create_doctor(actor=office, full_name='Dr. New', email='new@example.org', password=PASSWORD,
                                    license_number='LIC-77', specialty='Radiology')
    doctor_id = accounts.get_actor(doctor.user_id).doctor_id
    accounts.set_doctor_active(actor=office, doctor_id=doctor_id, active=False)
    accounts.set_doctor_active(actor=office, doctor_id=doctor_id, active=True)
    exam_id = paid(make_patient())
    examinations.cancel(actor=office, examination_id=exam_id, reason='Duplicate request')

    rows = [(row.action, row.object_type, row.object_id) for row in events()
            if row.actor_user_id == admin.user_id and row.client_address == '192.0.2.10']
    assert rows == [('doctor.created', 'doctor', str(doctor_id)), ('doctor.deactivated', 'doctor', str(doctor_id)),
                    ('doctor.activated', 'doctor', str(doctor_id)), ('payment.refunded', 'examination', exam_id),
                    ('examination.cancelled', 'examination', exam_id)]


# --- the admin's view ----------------------------------------------------------------------------


def test_filters_by_user_action_object_address_and_dates(admin, make_patient):
    alice = make_patient(email='alice@example.org')
    bea = make_patient(name='Bea Other', email='bea@example.org')
    exam_id = paid(alice)
    examinations.view_exam(actor=at(alice, '198.51.100.1'), examination_id=exam_id, page='examination')
    examinations.view_exam(actor=at(admin, '192.0.2.10'), examination_id=exam_id, page='examination')
    with pytest.raises(NotFoundError):
        examinations.get_exam(actor=at(bea, '203.0.113.9'), examination_id=exam_id)
    with pytest.raises(ValidationError):
        accounts.authenticate(email='nobody@example.org', password='not the password', client_address='203.0.113.9')

    def search(**filters) -> list[tuple[str, int | None]]:
        page = audit_log.search(actor=admin, filters=audit_log.AuditFilter(**filters))
        assert page.total == len(page.entries)
        return [(entry.action, entry.user_id) for entry in page.entries]

    assert search(user='bea@example.org', action='access.denied') == [('access.denied', bea.user_id)]
    assert search(user=str(bea.user_id), action='access.denied') == [('access.denied', bea.user_id)]
    assert search(action='examination.viewed') == [('examination.viewed', admin.user_id),
                                                   ('examination.viewed', alice.user_id)]
    assert search(object_type='examination', object_id=exam_id, client_address='198.51.100.1') == \
        [('examination.viewed', alice.user_id)]
    # Sign-ins with an address that has no account are stored under its SHA-256 and found by the address.
    assert search(user='Nobody@Example.org') == [('sign_in.failed', None)]
    assert audit_log.search(actor=admin, filters=audit_log.AuditFilter(user='nobody@example.org')).entries[0] \
        .object_id == hash_key('nobody@example.org')
    # Events about a user's account match as well as the user's own, e.g. an admin deactivating them.
    accounts.set_user_active(actor=admin, user_id=bea.user_id, active=False)
    assert search(user='bea@example.org', action='user.deactivated') == [('user.deactivated', admin.user_id)]
    assert search(user='alice@example.org', action='user.deactivated') == []
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert search(action='access.denied', start=today, end=today + timedelta(days=1)) != []
    assert search(action='access.denied', start=today + timedelta(days=1)) == []
    assert search(action='access.denied', end=today) == []


def test_filter_errors_and_non_admins(admin, make_patient):
    patient = make_patient()
    with pytest.raises(ValidationError) as bad_user:
        audit_log.search(actor=admin, filters=audit_log.AuditFilter(user='alice'))
    assert bad_user.value.field == 'user'
    assert 'neither a user id' in str(bad_user.value)
    now = datetime.now(UTC)
    with pytest.raises(ValidationError) as bad_range:
        audit_log.search(actor=admin, filters=audit_log.AuditFilter(start=now, end=now - timedelta(days=1)))
    assert bad_range.value.field == 'start'
    with pytest.raises(PermissionDeniedError):
        audit_log.search(actor=patient)
    with pytest.raises(PermissionDeniedError):
        audit_log.export_csv(actor=patient)


def test_pages_of_fifty_newest_first(admin):
    for number in range(120):
        audit.record_now(admin, 'test.event', 'thing', number)

    filters = audit_log.AuditFilter(action='test.event')
    first = audit_log.search(actor=admin, filters=filters)
    last = audit_log.search(actor=admin, filters=filters, page=3)
    assert (first.total, first.pages, len(first.entries), len(last.entries)) == (120, 3, 50, 20)
    assert [entry.object_id for entry in first.entries[:3]] == ['119', '118', '117']
    assert last.entries[-1].object_id == '0'
    assert audit_log.search(actor=admin, filters=filters, page=4).entries == []


def test_csv_export_is_formula_safe_and_recorded(admin):
    # An email address may start with "=" and a spreadsheet would run it as a formula.
    risky = accounts.register_patient(full_name='Formula Person', email='=1+2@example.org', password=PASSWORD,
                                      date_of_birth=datetime(1990, 1, 1).date())
    with db.session_scope() as session:
        session.get(User, risky.user_id).email_verified_at = datetime.now(UTC)  # as the emailed link does
    patient = accounts.get_actor(risky.user_id)
    exam_id = paid(patient)
    examinations.view_exam(actor=at(patient, '198.51.100.7'), examination_id=exam_id, page='examination')

    content = audit_log.export_csv(actor=admin, filters=audit_log.AuditFilter(action='examination.viewed'))

    rows = list(csv.DictReader(io.StringIO(content)))
    assert len(rows) == 1
    assert rows[0]['user_email'] == "'=1+2@example.org"
    assert (rows[0]['object_id'], rows[0]['client_address']) == (exam_id, '198.51.100.7')
    assert rows[0]['detail'] == '{"page": "examination"}'
    exported = events('audit_log.exported')
    assert len(exported) == 1
    assert exported[0].detail == {'rows': 1, 'filters': {'action': 'examination.viewed'}}


# --- the table itself ----------------------------------------------------------------------------


def test_audit_rows_cannot_be_changed_or_deleted(admin):
    audit.record_now(admin, 'test.event', 'thing', 1)
    with db.session_scope() as session:
        event_id = session.scalars(select(AuditEvent.id).where(AuditEvent.action == 'test.event')).one()

    for statement in ("UPDATE audit_events SET action = 'changed' WHERE id = :id",
                      'DELETE FROM audit_events WHERE id = :id'):
        with pytest.raises(DBAPIError), db.session_scope() as session:
            session.execute(text(statement), {'id': event_id})

    with db.session_scope() as session:
        assert session.get(AuditEvent, event_id).action == 'test.event'


# --- log hygiene ---------------------------------------------------------------------------------


def test_log_guard_reports_passwords_tickets_and_patient_names():
    watch = Watchlist()
    watch.add_secret(PASSWORD)
    watch.add_name('CompressedSamples^CT1')
    watch.add_name('Alice Patient')
    watch.add_name('Bob')  # too short to check without flagging ordinary words
    lines = [
        f'INFO secondopinion.services.accounts: sign-in for alice@example.org with {PASSWORD}',
        'INFO uvicorn: "GET /auth/session?ticket=Zm9vYmFyYmF6cXV4cXV1eA HTTP/1.1" 200',
        'INFO secondopinion.services.dicom: study of CompressedSamples CT1 stored',
        'INFO secondopinion.services.notifications: email to Alice Patient queued',
        'INFO secondopinion.services.accounts: user 4 (alice@example.org) signed in; Bob was here',
    ]

    findings = scan(lines, watch, 'test')

    assert [(finding.kind, finding.line) for finding in findings] == [
        ('the secret', lines[0]), ('a session secret', lines[1]), ('the patient name', lines[2]),
        ('the patient name', lines[3])]
    assert PASSWORD in findings[0].describe()


def test_log_guard_collects_records_and_names(make_patient):
    import pydicom

    make_patient(name='Gwendolyn Testpatient')
    logging.getLogger('secondopinion.services.test_probe').debug('probe record for user %s', 42)
    dataset = pydicom.dcmread(get_testdata_file('MR_small.dcm'), stop_before_pixels=True)

    assert 'DEBUG secondopinion.services.test_probe: probe record for user 42' in GUARD.handler.lines
    assert PASSWORD in GUARD.watch.secrets
    GUARD.collect_names_of_test()
    assert 'Gwendolyn Testpatient' in GUARD.watch.names
    # Every person name pydicom decodes is watched, in DICOM's form and with the "^" as a space.
    assert str(dataset.PatientName) in GUARD.watch.names
    assert str(dataset.PatientName).replace('^', ' ') in GUARD.watch.names


def test_log_guard_checks_server_log(make_patient):
    from secondopinion.config import get_settings
    from tests.log_guard import LogGuard

    make_patient(name='Ottilie Serverlog')
    database = get_settings().data_dir / 'secondopinion.db'
    if not database.is_file():
        pytest.skip('the browser tests run the app on SQLite; this test database is another one')
    guard = LogGuard()
    cookie = 'a-session-cookie-value-0123456789'
    lines = ['INFO secondopinion.services.accounts: patient registered: user 2',
             'INFO secondopinion.services.mail: report for Ottilie Serverlog written',
             f'INFO secondopinion.api.auth: cookie {cookie} set']

    findings = guard.check_lines(lines, 'server log', database=database, cookies=[cookie])

    assert [(finding.kind, finding.line) for finding in findings] == [
        ('the patient name', lines[1]), ('the secret', lines[2])]
