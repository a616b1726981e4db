"""Service errors shown in the user's language: Turkish under use_language('tr'), English otherwise."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.i18n import error_message, use_language
from secondopinion.models import User
from secondopinion.services import accounts, examinations, payments, sharing, studies
from secondopinion.services.errors import ConflictError, DomainError, ValidationError

from .flow import draft_with_link, paid, submitted


def _both(error: DomainError) -> tuple[str, str]:
    """Return the error's message in English (outside any language block) and in Turkish."""
    english = error_message(error)
    with use_language('tr'):
        turkish = error_message(error)
    return english, turkish


def test_short_password_in_turkish():
    with pytest.raises(ValidationError) as caught:
        accounts.register_patient(full_name='Ayşe Yılmaz', email='ayse@example.org', password='short',
                                  date_of_birth=date(1980, 5, 17), phone='+905321234567')

    english, turkish = _both(caught.value)
    assert english == 'Password must have at least 12 characters.'
    assert str(caught.value) == english
    assert turkish == 'Şifre en az 12 karakter olmalıdır.'
    assert caught.value.field == 'password'
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_rejected_report_file_in_turkish(make_patient, tmp_path):
    patient = make_patient()
    exam_id = draft_with_link(patient)
    path = tmp_path / 'report.docx'
    path.write_bytes(b'PK\x03\x04 word document')

    with pytest.raises(ValidationError) as caught:
        studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename='report.docx', path=path)

    english, turkish = _both(caught.value)
    assert english == ('report.docx is not a PDF, PNG or JPEG file. Upload the first report as a PDF, '
                       'or a photo of it as PNG or JPEG.')
    assert turkish == ('report.docx bir PDF, PNG ya da JPEG dosyası değil. İlk raporu PDF olarak ya da '
                       'fotoğrafını PNG veya JPEG olarak yükleyin.')
    assert studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports == []


def test_wrong_share_code_in_turkish(make_patient):
    patient = make_patient()
    exam_id = submitted(patient)
    _link, token = sharing.create_link(actor=patient, examination_id=exam_id, access_code='4711')

    with pytest.raises(sharing.ShareLinkError) as caught:
        sharing.open_link(token, '0000')

    assert caught.value.reason == sharing.WRONG_CODE
    english, turkish = _both(caught.value)
    assert english == 'The access code is wrong. Check it with the patient.'
    assert turkish == 'Erişim kodu yanlış. Kodu hastayla birlikte kontrol edin.'


def test_payment_state_in_turkish(make_patient):
    patient = make_patient()
    exam_id = paid(patient)

    with pytest.raises(ConflictError) as caught:
        payments.start_checkout(actor=patient, examination_id=exam_id)

    english, turkish = _both(caught.value)
    assert english == 'This examination does not wait for payment.'
    assert turkish == 'Bu tetkik ödeme beklemiyor.'


def test_status_in_conflict_translated(make_patient, make_doctor):
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid(patient)
    examinations.accept(actor=doctor, examination_id=exam_id)

    with pytest.raises(ConflictError) as caught:
        examinations.cancel(actor=patient, examination_id=exam_id)

    english, turkish = _both(caught.value)
    assert english == 'This examination is under review and can no longer be cancelled.'
    assert turkish == 'Bu tetkikin durumu: inceleniyor. Artık iptal edilemez.'


def test_placeholder_values_kept_in_turkish():
    with pytest.raises(ValidationError) as caught:
        accounts.normalize_phone('12345')

    english, turkish = _both(caught.value)
    assert english == ('Phone number "12345" is invalid: use the international form with country code, '
                       'e.g. +41 79 123 45 67.')
    assert '"12345"' in turkish
    assert turkish.startswith('"12345" telefon numarası geçersiz')
