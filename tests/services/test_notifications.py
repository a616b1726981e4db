"""The notification outbox against real transports: .eml files, and an aiosmtpd SMTP server on loopback."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import delete, select

from secondopinion import db
from secondopinion.config import reset_settings
from secondopinion.models import AuditEvent, Examination, ExamStatus, Notification, NotificationStatus, Report
from secondopinion.models.base import utcnow
from secondopinion.services import notifications, scheduler
from secondopinion.services.errors import ConflictError, PermissionDeniedError, ValidationError
from secondopinion.services.mail import NOTIFICATION_HEADER
from secondopinion.services.report_pdf import ReportPdfData, render_report_pdf
from secondopinion.services.storage import get_storage

DIAGNOSIS = 'Spiculated 14 mm nodule in the right upper lobe, suspicious for malignancy'
SMTP_USER = 'mailer@example.org'
SMTP_PASSWORD = 'smtp-test-password-1234'


# --- fixtures ----------------------------------------------------------------------------------

@dataclass
class RecordingHandler:
    """aiosmtpd handler that keeps every accepted message."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd hook signature
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return '250 Message accepted for delivery'

    def notification_ids(self) -> list[int]:
        with self.lock:
            return [int(message[NOTIFICATION_HEADER]) for message in self.messages]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be started late, to simulate a server that was down."""

    def __init__(self, port: int, **smtp_options) -> None:
        self.port = port
        self.handler = RecordingHandler()
        self.options = smtp_options
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname='127.0.0.1', port=self.port, **self.options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def make_patient(make_patient):
    """Create patients whose welcome email is already gone, so each test finds only the rows it queues."""
    def make(*args, **kwargs):  # noqa: ANN002, ANN003
        actor = make_patient(*args, **kwargs)
        with db.session_scope() as session:
            session.execute(delete(Notification).where(Notification.user_id == actor.user_id,
                                                       Notification.template == 'welcome'))
        return actor
    return make


@pytest.fixture
def smtp_server(monkeypatch) -> Iterator[SmtpServer]:
    """Point the app at a loopback SMTP port without TLS; the test calls start() when the server should run."""
    server = SmtpServer(free_port())
    use_smtp(monkeypatch, server.port)
    yield server
    server.stop()


def use_smtp(monkeypatch, port: int, **extra: str) -> None:
    monkeypatch.setenv('SECONDOPINION_SMTP_HOST', '127.0.0.1')
    monkeypatch.setenv('SECONDOPINION_SMTP_PORT', str(port))
    monkeypatch.setenv('SECONDOPINION_SMTP_STARTTLS', 'false')
    for name, value in extra.items():
        monkeypatch.setenv(f'SECONDOPINION_{name}', value)
    reset_settings()


def make_exam(patient, status: str = ExamStatus.REPORTED) -> str:
    """Insert an examination of the patient with a final report whose findings contain DIAGNOSIS."""
    with db.session_scope() as session:
        exam = Examination(patient_id=patient.patient_id, status=status, modality='CT', body_part='Chest',
                           clinical_question='Cough')
        session.add(exam)
        session.flush()
        return exam.id


def add_report(exam_id: str, doctor) -> bytes:
    """Store a final report with DIAGNOSIS in its findings, render its PDF and return the PDF bytes."""
    pdf = render_report_pdf(ReportPdfData(
        practice_name='SecondOpinion Radiology', report_id='1', examination_id=exam_id,
        patient_name='Şükrü Yılmaz', patient_birth_date=date(1980, 5, 17), modality='CT', body_part='Chest',
        clinical_question='Cough', study_summary='CT, 1 series, 2 images', doctor_name=doctor.name,
        doctor_license='LIC-1', doctor_specialty='Radiology', findings=DIAGNOSIS, impression=DIAGNOSIS,
        recommendations='', finalized_at=datetime(2024, 1, 19, 14, 3, tzinfo=UTC)))
    key = f'exams/{exam_id}/report-1.pdf'
    get_storage().save(key, [pdf])
    with db.session_scope() as session:
        session.add(Report(examination_id=exam_id, doctor_id=doctor.doctor_id, findings=DIAGNOSIS,
                           impression=DIAGNOSIS, is_final=True, pdf_key=key, finalized_at=utcnow()))
    return pdf


def enqueue(patient, exam_id: str | None = None, template: str = 'case_accepted', **options) -> int:
    context = {'patient_name': 'Şükrü Yılmaz', 'examination_id': exam_id, 'amount': 'EUR 150.00'}
    with db.session_scope() as session:
        notification = notifications.enqueue_email(
            session, user_id=patient.user_id, examination_id=exam_id, recipient='sukru@example.org',
            template=template, context=context, **options)
        return notification.id


def load(notification_id: int) -> Notification:
    with db.session_scope() as session:
        row = session.get(Notification, notification_id)
        assert row is not None
        session.expunge(row)
        return row


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def body_parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=('plain',))
    html = message.get_body(preferencelist=('html',))
    assert text is not None, 'text/plain part missing'
    assert html is not None, 'text/html part missing'
    return text.get_content(), html.get_content()


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- templates and enqueueing ------------------------------------------------------------------

def test_unknown_template_is_rejected(make_patient):
    patient = make_patient()
    with pytest.raises(ValueError, match='unknown'):
        enqueue(patient, template='no_such_template')


def test_missing_context_value_is_rejected(make_patient):
    patient = make_patient()
    with db.session_scope() as session, pytest.raises(ValueError, match='amount'):
        notifications.enqueue_email(session, user_id=patient.user_id, examination_id=None,
                                    recipient='a@example.org', template='payment_received',
                                    context={'patient_name': 'A', 'examination_id': 'x'})


def test_enqueue_rolls_back_with_caller(make_patient):
    patient = make_patient()
    with pytest.raises(RuntimeError), db.session_scope() as session:
        notifications.enqueue_email(session, user_id=patient.user_id, examination_id=None,
                                    recipient='a@example.org', template='welcome', context={'patient_name': 'A'})
        raise RuntimeError('the causing event failed')
    with db.session_scope() as session:
        assert session.scalars(select(Notification).where(Notification.recipient == 'a@example.org')).all() == []


def test_templates_escape_html_and_link_to_exam(make_patient, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_PUBLIC_BASE_URL', 'https://so.example.org/')
    reset_settings()
    patient = make_patient()
    exam_id = make_exam(patient)
    with db.session_scope() as session:
        row = notifications.enqueue_email(
            session, user_id=patient.user_id, examination_id=exam_id, recipient='a@example.org',
            template='payment_received',
            context={'patient_name': 'Tom <script> & Jerry', 'examination_id': exam_id, 'amount': 'EUR 150.00'})
        text, html = row.body_text, row.body_html
    assert 'Tom &lt;script&gt; &amp; Jerry' in html
    assert '<script>' not in html
    assert 'Tom <script> & Jerry' in text
    assert f'https://so.example.org/exams/{exam_id}' in text
    assert f'href="https://so.example.org/exams/{exam_id}"' in html
    assert 'EUR 150.00' in text


def test_retry_delay_doubles_up_to_one_hour():
    assert notifications.retry_delay(1) == timedelta(seconds=30)
    assert notifications.retry_delay(2) == timedelta(seconds=60)
    assert notifications.retry_delay(7) == timedelta(seconds=30 * 64)
    assert notifications.retry_delay(8) == timedelta(hours=1)
    assert notifications.retry_delay(1000) == timedelta(hours=1)


# --- .eml outbox transport ---------------------------------------------------------------------

def test_report_email_written_as_eml_with_pdf(make_patient, make_doctor, admin):
    patient = make_patient()
    exam_id = make_exam(patient)
    pdf = add_report(exam_id, make_doctor())
    notification_id = enqueue(patient, exam_id, template='report_ready',
                              attachment_key=f'exams/{exam_id}/report-1.pdf', attachment_name='report.pdf')

    assert notifications.deliver_due() == 1

    files = notifications.outbox_files(actor=admin)
    assert len(files) == 1
    assert files[0].name.endswith(f'-{notification_id}.eml')
    message = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert message['To'] == 'sukru@example.org'
    assert message[NOTIFICATION_HEADER] == str(notification_id)
    text, html = body_parts(message)
    assert 'attached' in text
    assert f'/exams/{exam_id}' in text
    assert f'/exams/{exam_id}' in html
    assert DIAGNOSIS not in text
    assert DIAGNOSIS not in html
    attachments = list(message.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_filename() == 'report.pdf'
    assert attachments[0].get_content_type() == 'application/pdf'
    assert attachments[0].get_content() == pdf

    row = load(notification_id)
    assert row.status == NotificationStatus.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    with db.session_scope() as session:
        assert session.get(Examination, exam_id).status == ExamStatus.COMPLETED


def test_eml_source_readable_by_admin(make_patient, admin):
    patient = make_patient()
    enqueue(patient, make_exam(patient))
    notifications.deliver_due()
    name = notifications.outbox_files(actor=admin)[0].name
    source = notifications.read_eml(actor=admin, name=name)
    assert 'Subject: A radiologist is reviewing your examination' in source


def test_outbox_files_newest_first(make_patient, admin):
    patient = make_patient()
    first = enqueue(patient, make_exam(patient))
    notifications.deliver_due()
    second = enqueue(patient, make_exam(patient))
    notifications.deliver_due()
    names = [path.name for path in notifications.outbox_files(actor=admin)]
    assert names[0].endswith(f'-{second}.eml')
    assert names[1].endswith(f'-{first}.eml')


@pytest.mark.parametrize('name', ['../secondopinion.db', 'sub/x.eml', '..\\x.eml', '.hidden.eml', 'x.txt', ''])
def test_read_eml_rejects_paths(admin, name):
    with pytest.raises(ValidationError):
        notifications.read_eml(actor=admin, name=name)


def test_outbox_files_require_admin(make_patient):
    patient = make_patient()
    with pytest.raises(PermissionDeniedError):
        notifications.outbox_files(actor=patient)
    with pytest.raises(PermissionDeniedError):
        notifications.read_eml(actor=patient, name='x.eml')


# --- SMTP transport ----------------------------------------------------------------------------

def test_smtp_delivers_report_with_attachment(smtp_server, make_patient, make_doctor):
    smtp_server.start()
    patient = make_patient()
    exam_id = make_exam(patient)
    pdf = add_report(exam_id, make_doctor())
    notification_id = enqueue(patient, exam_id, template='report_ready',
                              attachment_key=f'exams/{exam_id}/report-1.pdf', attachment_name='report.pdf')

    assert notifications.deliver_due() == 1

    assert len(smtp_server.handler.messages) == 1
    message = smtp_server.handler.messages[0]
    assert smtp_server.handler.envelopes[0] == ('no-reply@secondopinion.local', ['sukru@example.org'])
    assert message[NOTIFICATION_HEADER] == str(notification_id)
    assert message['Subject'] == 'Your second opinion report is ready'
    text, html = body_parts(message)
    assert 'Şükrü Yılmaz' in text
    assert DIAGNOSIS not in text
    assert DIAGNOSIS not in html
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == ['report.pdf']
    assert attachments[0].get_content() == pdf
    assert load(notification_id).status == NotificationStatus.SENT


def test_smtp_login_with_credentials(monkeypatch, make_patient):
    def authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001 - aiosmtpd hook
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
              and auth_data.password == SMTP_PASSWORD.encode())
        # handled=False lets aiosmtpd send the 535 reply for a rejected login.
        return AuthResult(success=ok, handled=False)

    server = SmtpServer(free_port(), authenticator=authenticate, auth_require_tls=False)
    server.start()
    try:
        use_smtp(monkeypatch, server.port, SMTP_USER=SMTP_USER, SMTP_PASSWORD=SMTP_PASSWORD)
        patient = make_patient()
        notification_id = enqueue(patient, make_exam(patient))
        assert notifications.deliver_due() == 1
        assert server.handler.notification_ids() == [notification_id]

        use_smtp(monkeypatch, server.port, SMTP_USER=SMTP_USER, SMTP_PASSWORD='wrong-' + SMTP_PASSWORD)
        rejected_id = enqueue(patient, make_exam(patient))
        assert notifications.deliver_due() == 0
        row = load(rejected_id)
        assert row.last_error.startswith('SMTPAuthenticationError')
        assert SMTP_PASSWORD not in row.last_error
    finally:
        server.stop()


def test_smtp_down_then_up_sends_once(smtp_server, make_patient):
    patient = make_patient()
    notification_id = enqueue(patient, make_exam(patient))
    now = utcnow()

    assert notifications.deliver_due(now=now) == 0

    row = load(notification_id)
    assert row.status == NotificationStatus.QUEUED
    assert row.attempts == 1
    assert aware(row.next_attempt_at) == now + timedelta(seconds=30)
    assert row.last_error.startswith('ConnectionRefusedError')
    assert row.claimed_at is None

    smtp_server.start()
    assert notifications.deliver_due(now=now + timedelta(seconds=10)) == 0, 'retried before its backoff'
    assert notifications.deliver_due(now=now + timedelta(seconds=31)) == 1
    assert notifications.deliver_due(now=now + timedelta(hours=2)) == 0

    assert smtp_server.handler.notification_ids() == [notification_id]
    row = load(notification_id)
    assert row.status == NotificationStatus.SENT
    assert row.attempts == 2


def test_failed_row_sent_after_admin_retry(smtp_server, monkeypatch, make_patient, admin):
    monkeypatch.setenv('SECONDOPINION_NOTIFICATION_MAX_ATTEMPTS', '2')
    reset_settings()
    patient = make_patient()
    notification_id = enqueue(patient, make_exam(patient))
    now = utcnow()

    notifications.deliver_due(now=now)
    notifications.deliver_due(now=now + timedelta(minutes=5))

    row = load(notification_id)
    assert row.status == NotificationStatus.FAILED
    assert row.attempts == 2
    assert notifications.deliver_due(now=now + timedelta(days=1)) == 0, 'a failed row is not retried by itself'
    assert [r.id for r in notifications.list_notifications(actor=admin, status='failed')] == [notification_id]

    notifications.retry_notification(actor=admin, notification_id=notification_id)

    row = load(notification_id)
    assert row.status == NotificationStatus.QUEUED
    assert row.attempts == 0
    with db.session_scope() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == 'notification')).all()
    assert actions == ['notification.retried']

    smtp_server.start()
    assert notifications.deliver_due() == 1
    assert smtp_server.handler.notification_ids() == [notification_id]
    assert load(notification_id).status == NotificationStatus.SENT


def test_retry_rejects_non_admin(make_patient, make_doctor):
    patient = make_patient()
    notification_id = enqueue(patient, make_exam(patient))
    with pytest.raises(PermissionDeniedError):
        notifications.retry_notification(actor=patient, notification_id=notification_id)
    with pytest.raises(PermissionDeniedError):
        notifications.retry_notification(actor=make_doctor(), notification_id=notification_id)


def test_retry_rejects_row_not_failed(make_patient, admin):
    patient = make_patient()
    notification_id = enqueue(patient, make_exam(patient))
    with pytest.raises(ConflictError):
        notifications.retry_notification(actor=admin, notification_id=notification_id)


def test_list_notifications_rejects_unknown_status(admin):
    with pytest.raises(ValidationError):
        notifications.list_notifications(actor=admin, status='lost')


def test_list_notifications_requires_admin(make_patient):
    with pytest.raises(PermissionDeniedError):
        notifications.list_notifications(actor=make_patient())


def test_concurrent_runs_send_each_row_once(smtp_server, make_patient):
    smtp_server.start()
    patient = make_patient()
    exam_id = make_exam(patient)
    ids = [enqueue(patient, exam_id) for _ in range(10)]
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            counts.append(notifications.deliver_due())
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(counts) == 10
    assert sorted(smtp_server.handler.notification_ids()) == sorted(ids)
    assert {load(i).status for i in ids} == {NotificationStatus.SENT}


def test_stale_sending_row_is_reclaimed(make_patient):
    patient = make_patient()
    stale_id = enqueue(patient, make_exam(patient))
    recent_id = enqueue(patient, make_exam(patient))
    now = utcnow()
    with db.session_scope() as session:
        for notification_id, claimed_at in ((stale_id, now - timedelta(minutes=11)),
                                            (recent_id, now - timedelta(minutes=5))):
            row = session.get(Notification, notification_id)
            row.status = NotificationStatus.SENDING
            row.claimed_at = claimed_at

    assert notifications.deliver_due(now=now) == 1

    assert load(stale_id).status == NotificationStatus.SENT
    assert load(recent_id).status == NotificationStatus.SENDING


def test_scheduler_delivers_queued_row(make_patient):
    patient = make_patient()
    notification_id = enqueue(patient, make_exam(patient))
    scheduler.start_scheduler()
    try:
        scheduler.start_scheduler()  # a second start is ignored
        delivered = wait_until(lambda: load(notification_id).status == NotificationStatus.SENT)
    finally:
        scheduler.stop_scheduler()
    scheduler.stop_scheduler()  # a second stop is ignored
    assert delivered


def test_scheduler_survives_failing_run(monkeypatch, make_patient):
    calls: list[int] = []

    def failing_run() -> int:
        calls.append(1)
        raise RuntimeError('database unavailable')

    monkeypatch.setattr(notifications, 'deliver_due', failing_run)
    scheduler.start_scheduler()
    try:
        survived = wait_until(lambda: len(calls) >= 3)
    finally:
        scheduler.stop_scheduler()
    assert survived


def test_scheduler_never_overlaps_or_catches_up(monkeypatch):
    """Misfire policy: a run that lasts longer than the interval is never joined by a second one, and
    the runs it made late are dropped (coalesced) instead of being made up in a burst afterwards."""
    running, overlaps, starts = [0], [0], []
    lock = threading.Lock()

    def slow_run() -> int:
        with lock:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
            starts.append(time.monotonic())
        time.sleep(1.0 if len(starts) == 1 else 0.0)  # the interval is 0.2 s, so the first run misses four
        with lock:
            running[0] -= 1
        return 0

    monkeypatch.setattr(notifications, 'deliver_due', slow_run)
    scheduler.start_scheduler()
    try:
        assert wait_until(lambda: len(starts) >= 3)
        time.sleep(0.5)
    finally:
        scheduler.stop_scheduler()
    assert overlaps[0] == 1
    gaps = [later - earlier for earlier, later in zip(starts[1:], starts[2:])]
    assert min(gaps) > 0.1, f'runs started in a burst after the slow one: gaps {gaps}'
