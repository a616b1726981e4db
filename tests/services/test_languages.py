"""Languages: locale formatting, the choice of language, and emails, texts and PDFs in the recipient's language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from secondopinion import db, i18n
from secondopinion.models import Notification, User
from secondopinion.services import accounts, examinations, payments, profile, questions
from secondopinion.services.errors import NotFoundError, ValidationError
from secondopinion.services.report_pdf import render_report_pdf
from tests.conftest import PASSWORD

from .flow import reported, submitted
from .test_report_pdf import needs_pdftotext, pdf_text, sample

MOMENT = datetime(2026, 12, 5, 11, 30, tzinfo=UTC)
ISTANBUL = ZoneInfo('Europe/Istanbul')


def _rows(template: str, channel: str = 'email') -> list[Notification]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(Notification).where(Notification.template == template,
                                                               Notification.channel == channel)))
        session.expunge_all()
        return rows


def _language_of(user_id: int) -> str:
    with db.session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.language


def test_dates_in_turkish_and_english():
    assert i18n.format_datetime(MOMENT, ISTANBUL, language='tr') == '5 Aralık 2026 14:30 (Europe/Istanbul)'
    assert i18n.format_datetime(MOMENT, ISTANBUL, language='en') == '5 Dec 2026, 14:30 (Europe/Istanbul)'
    assert i18n.format_datetime(MOMENT, ISTANBUL, language='tr', with_zone=False) == '5 Aralık 2026 14:30'
    assert i18n.format_date(date(2026, 2, 14), language='tr') == '14 Şubat 2026'
    assert i18n.format_date(date(2026, 2, 14), language='en') == '14 February 2026'


def test_amounts_in_turkish_and_english():
    assert i18n.format_money(123450, 'TRY', language='tr') == '₺1.234,50'
    assert i18n.format_money(-500, 'TRY', language='tr') == '-₺5,00'
    assert i18n.format_money(123450, 'EUR', language='tr') == '€1.234,50'
    # English keeps the app's format: amount, then the ISO code.
    assert i18n.format_money(123450, 'CHF', language='en') == '1,234.50 CHF'
    assert i18n.format_money(-500, 'CHF', language='en') == '-5.00 CHF'
    assert i18n.format_money(None, 'CHF', language='tr') == '-'


def test_format_follows_current_language():
    with i18n.use_language('tr'):
        assert payments.format_money(9900, 'TRY') == '₺99,00'
    assert payments.format_money(9900, 'TRY') == '99.00 TRY'


def test_accept_language_negotiation():
    assert i18n.negotiate('de-CH,tr;q=0.8,en;q=0.5') == 'tr'
    assert i18n.negotiate('tr-TR') == 'tr'
    assert i18n.negotiate('en-GB,tr;q=0.9') == 'en'
    assert i18n.negotiate('tr;q=0, en;q=0.1') == 'en'
    assert i18n.negotiate('fr, de') is None
    assert i18n.negotiate('') is None
    assert i18n.negotiate('tr;q=abc') is None


def test_plural_forms_and_placeholders():
    with i18n.use_language('tr'):
        assert i18n.ngettext('{count} image', '{count} images', 1) == '1 görüntü'
        assert i18n.ngettext('{count} image', '{count} images', 3) == '3 görüntü'
        assert i18n.gettext('Created {time}', time='dün') == 'Oluşturulma: dün'
    assert i18n.ngettext('{count} image', '{count} images', 1) == '1 image'
    assert i18n.ngettext('{count} image', '{count} images', 2000) == '2000 images'


def test_domain_error_translated_at_display():
    error = NotFoundError('Examination')
    assert str(error) == 'Examination not found.'
    with i18n.use_language('tr'):
        assert i18n.error_message(error) == 'Tetkik bulunamadı.'
    assert i18n.error_message(error) == 'Examination not found.'


def test_profile_language_saved(make_patient):
    patient = make_patient()
    assert _language_of(patient.user_id) == 'en'
    assert profile.set_language(actor=patient, language='tr') == 'tr'
    assert _language_of(patient.user_id) == 'tr'
    assert accounts.get_actor(patient.user_id).language == 'tr'


@pytest.mark.parametrize('code', ['de', '', 'TR', 'tr-TR', 'x' * 40])
def test_invalid_language_rejected(make_patient, code):
    patient = make_patient()
    with pytest.raises(ValidationError, match='is not supported: choose one of en, tr') as raised:
        profile.set_language(actor=patient, language=code)
    assert raised.value.field == 'language'
    assert _language_of(patient.user_id) == 'en'


def test_registration_with_invalid_language_writes_nothing():
    with pytest.raises(ValidationError, match='Language "de" is not supported'):
        accounts.register_patient(full_name='Ayşe Kaya', email='ayse@example.org', password=PASSWORD,
                                  date_of_birth=date(1985, 1, 2), language='de')
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
        assert session.scalar(select(func.count()).select_from(Notification)) == 0


def test_registration_in_turkish_sends_turkish_welcome():
    info = accounts.register_patient(full_name='Ayşe Kaya', email='ayse@example.org', password=PASSWORD,
                                     date_of_birth=date(1985, 1, 2), language='tr')
    assert _language_of(info.user_id) == 'tr'
    [welcome] = _rows('welcome')
    assert welcome.subject.endswith('hizmetine hoş geldiniz')
    assert welcome.body_text.startswith('Merhaba Ayşe Kaya,')
    assert 'E-posta adresinizi doğrulayın' in welcome.body_text
    assert '<html lang="tr">' in welcome.body_html


def test_emails_and_sms_in_recipient_language(make_patient, make_doctor):
    patient = make_patient(name='Şükrü Yılmaz', email='sukru@example.org', phone='+905321234567')
    profile.set_language(actor=patient, language='tr')
    profile.update_contact(actor=patient, phone='+905321234567', notify_email=True, notify_sms=True)
    patient = accounts.get_actor(patient.user_id)
    doctor = make_doctor(email='doctor@example.org', name='Dr. Grace Hopper')

    exam_id = reported(patient, doctor)

    [paid_email] = _rows('payment_received')
    assert paid_email.subject == 'Tetkikinizin ödemesi alındı'
    # The price in the patient's locale, e.g. "€100,00" for EUR.
    exam = examinations.get_exam(actor=patient, examination_id=exam_id)
    amount = i18n.format_money(exam.price_cents, exam.currency, language='tr')
    assert ',' in amount
    assert f'{amount} tutarındaki ödemenizi aldık' in paid_email.body_text
    [paid_sms] = _rows('payment_received', 'sms')
    assert 'ödeme alındı. Tetkikiniz bir radyolog bekliyor.' in paid_sms.body_text
    [ready_email] = _rows('report_ready')
    assert ready_email.subject == 'İkinci görüş raporunuz hazır'
    assert 'Saygılarımızla,' in ready_email.body_text
    [ready_sms] = _rows('report_ready', 'sms')
    assert 'raporunuz hazır. Okumak için giriş yapın:' in ready_sms.body_text

    # The patient acts, the doctor receives: the doctor's email stays English.
    question_id = questions.ask(actor=patient, examination_id=exam_id, text='Bir göğüs hastalıkları uzmanına '
                                                                               'gitmeli miyim?')
    [asked] = _rows('question_asked')
    assert asked.recipient == 'doctor@example.org'
    assert asked.subject == 'A patient asked a question about your report'
    assert asked.body_text.startswith('Hello Dr. Grace Hopper,')

    # The doctor acts in English, the patient receives in Turkish.
    questions.answer(actor=doctor, examination_id=exam_id, question_id=question_id, text='Not now.')
    [answered] = _rows('question_answered')
    assert answered.subject == 'Radyolog sorunuzu yanıtladı'


def test_refund_by_admin_in_patient_language(make_patient, admin):
    patient = make_patient()
    profile.set_language(actor=patient, language='tr')
    exam_id = submitted(accounts.get_actor(patient.user_id))
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])

    # The admin's own language does not decide the patient's message.
    with i18n.use_language('en'):
        examinations.cancel(actor=admin, examination_id=exam_id)
    [refund] = _rows('refund')
    assert refund.subject == 'Tetkikiniz iptal edildi ve ücreti iade edildi'
    assert 'tutarını ödemede kullandığınız yönteme iade ettik' in refund.body_text


@needs_pdftotext
def test_pdf_labels_in_turkish():
    text = pdf_text(render_report_pdf(sample(language='tr')))
    for label in ('İkinci Görüş Radyoloji Raporu', 'Hasta', 'Doğum tarihi', 'Tetkik No', 'Klinik soru', 'Bulgular',
                  'Sonuç', 'Öneriler', 'Rapor No 42', 'Rapor tarihi', 'Sayfa 1 /', 'Tescil No LIC-00042'):
        assert label in text, label
    assert '9 Mart 1971' in text
    assert '19 Ocak 2024 14:03 UTC' in text
    # The radiologist's texts stay as written.
    assert 'Lungs are clear.' in text
    assert 'Normal chest CT.' in text
    assert 'Findings' not in text


@needs_pdftotext
def test_pdf_labels_english_by_default():
    text = pdf_text(render_report_pdf(sample()))
    for label in ('Second Opinion Radiology Report', 'Findings', 'Impression', 'Recommendations', '1971-03-09',
                  '2024-01-19 14:03 UTC'):
        assert label in text, label
