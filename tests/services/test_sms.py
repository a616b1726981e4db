"""Text messages: the patient's channel choice, delivery through the real `twilio` library to a fake Twilio, retries."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from secondopinion import db
from secondopinion.config import reset_settings
from secondopinion.models import Notification, NotificationStatus
from secondopinion.models.base import utcnow
from secondopinion.services import examinations, notifications, profile, reports, sms
from secondopinion.services.errors import DomainError, ValidationError
from tests import fake_twilio
from tests.fake_twilio import FakeTwilio

from .flow import paid

PHONE = '+41791234567'


@pytest.fixture
def twilio(monkeypatch) -> Iterator[FakeTwilio]:
    fake, server, base_url = fake_twilio.start_fake_twilio()
    monkeypatch.setenv('SECONDOPINION_TWILIO_ACCOUNT_SID', fake_twilio.ACCOUNT_SID)
    monkeypatch.setenv('SECONDOPINION_TWILIO_AUTH_TOKEN', fake_twilio.AUTH_TOKEN)
    monkeypatch.setenv('SECONDOPINION_TWILIO_FROM', fake_twilio.SENDER)
    monkeypatch.setenv('SECONDOPINION_TWILIO_API_BASE', base_url)
    reset_settings()
    yield fake
    server.shutdown()
    server.server_close()


def _rows(exam_id: str) -> list[tuple[str, str, str]]:
    with db.session_scope() as session:
        rows = session.scalars(select(Notification).where(Notification.examination_id == exam_id)
                               .order_by(Notification.id))
        return [(row.channel, row.template, row.recipient) for row in rows]


def _sms_patient(make_patient, email: bool = False):  # noqa: ANN001, ANN202
    """Register a patient who chose SMS, and send the welcome email, which always goes by email."""
    patient = make_patient(phone=PHONE)
    profile.update_contact(actor=patient, phone='+41 79 123 45 67', notify_email=email, notify_sms=True)
    assert notifications.deliver_due() == 1
    return patient


def test_default_is_email_only(make_patient):
    patient = make_patient(phone=PHONE)
    exam_id = paid(patient)
    assert [(channel, template) for channel, template, _recipient in _rows(exam_id)] == [
        ('email', 'payment_received')]


def test_sms_only_patient_gets_texts(make_patient, make_doctor):
    patient = _sms_patient(make_patient)
    exam_id = paid(patient)
    examinations.accept(actor=make_doctor(), examination_id=exam_id)
    assert _rows(exam_id) == [('sms', 'payment_received', PHONE), ('sms', 'case_accepted', PHONE)]


def test_both_channels(make_patient):
    patient = _sms_patient(make_patient, email=True)
    exam_id = paid(patient)
    assert sorted(channel for channel, _template, _recipient in _rows(exam_id)) == ['email', 'sms']


def test_twilio_delivers_once_with_sender_and_link(twilio, make_patient, make_doctor):
    patient, doctor = _sms_patient(make_patient), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)
    reports.finalize(actor=doctor, examination_id=exam_id, findings='A 6 mm nodule.', impression='Benign.',
                     recommendations='')
    assert notifications.deliver_due() == 3
    assert notifications.deliver_due() == 0
    assert [(message['to'], message['from']) for message in twilio.messages] == [(PHONE, fake_twilio.SENDER)] * 3
    report_text = twilio.messages[-1]['body']
    assert report_text == f'SecondOpinion Radiology: your report is ready. Sign in to read it: ' \
                          f'http://127.0.0.1:8080/exams/{exam_id}'
    assert all('nodule' not in message['body'] and 'Benign' not in message['body'] for message in twilio.messages)
    assert all(len(message['body']) <= sms.MAX_SMS_CHARACTERS for message in twilio.messages)
    assert examinations.get_exam(actor=patient, examination_id=exam_id).status == 'completed'


def test_twilio_failure_is_retried(twilio, make_patient):
    patient = _sms_patient(make_patient)
    paid(patient)
    twilio.fail_next.extend([500])
    assert notifications.deliver_due() == 0
    with db.session_scope() as session:
        row = session.scalars(select(Notification).where(Notification.channel == 'sms')).one()
        assert (row.status, row.attempts) == (NotificationStatus.QUEUED, 1)
        assert 'Unable to create record' in row.last_error or '500' in row.last_error
        assert fake_twilio.AUTH_TOKEN not in row.last_error
        row.next_attempt_at = utcnow()
    assert notifications.deliver_due() == 1
    assert len(twilio.messages) == 1


def test_without_twilio_texts_are_logged(make_patient, caplog):
    patient = _sms_patient(make_patient)
    paid(patient)
    with caplog.at_level(logging.INFO, logger='secondopinion.services.sms'):
        assert notifications.deliver_due() == 1
    assert '+41******567' in caplog.text
    assert PHONE not in caplog.text


@pytest.mark.parametrize(('phone', 'email', 'text', 'message'), [
    ('', False, True, 'Enter your mobile phone number'),
    ('+41 79 123 45 67', False, False, 'Choose email, SMS or both'),
    ('079 123 45 67', True, True, 'use the international form'),
])
def test_invalid_preferences_rejected(make_patient, phone, email, text, message):
    patient = make_patient(phone=PHONE)
    with pytest.raises(ValidationError, match=message):
        profile.update_contact(actor=patient, phone=phone, notify_email=email, notify_sms=text)
    saved = profile.get_profile(actor=patient)
    assert (saved.phone, saved.notify_email, saved.notify_sms) == (PHONE, True, False)


def test_profile_only_for_patients(make_doctor):
    with pytest.raises(DomainError):
        profile.get_profile(actor=make_doctor())


def test_unknown_sms_template_rejected():
    with pytest.raises(ValueError, match='SMS template "welcome" is unknown'):
        sms.render_sms('welcome', {})
