"""Patient pages with bad input: clear messages, nothing written."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import User
from pydicom.data import get_testdata_file
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.config import get_settings
from secondopinion.models import Examination, StudyFile, User as UserRow
from tests.conftest import PASSWORD

from .helpers import dialog_is_open, dialog_text, set_value, sign_in, upload


def _count(model) -> int:  # noqa: ANN001
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _blob_files() -> list[Path]:
    root = get_settings().blob_dir
    return [path for path in root.rglob('*') if path.is_file()] if root.exists() else []


async def _register(user: User, *, email: str = 'carol@example.org', password: str = PASSWORD,
                    phone: str = '', birth: str = '1990-01-31') -> None:
    await user.open('/register')
    user.find(marker='name').type('Carol Patient')
    user.find(marker='email').type(email)
    if phone:
        user.find(marker='phone').type(phone)
    set_value(user, 'date_of_birth', birth)
    user.find(marker='password').type(password)
    user.find(marker='register').click()


async def test_register_short_password_rejected(user: User):
    await _register(user, password='short')
    await user.should_see('Password must have at least 12 characters.')
    assert _count(UserRow) == 0


async def test_register_bad_phone_rejected(user: User):
    await _register(user, phone='12345')
    await user.should_see('Phone number "12345" is invalid')
    phone = user.find(marker='phone').elements.pop()
    assert phone.props['error'] is True
    assert phone.props['error-message'].startswith('Phone number "12345" is invalid')
    assert _count(UserRow) == 0


async def test_register_future_birth_date_rejected(user: User):
    await _register(user, birth='2999-01-01')
    await user.should_see('is not a valid past date')
    assert _count(UserRow) == 0


async def test_register_duplicate_email_rejected(user: User, make_patient):
    make_patient(email='carol@example.org')
    await _register(user)
    await user.should_see('already exists')
    assert _count(UserRow) == 1


async def test_sign_in_wrong_password(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org', 'wrong password here')
    await user.should_see('Email or password is incorrect.')
    await user.should_not_see('My examinations')


async def test_non_dicom_upload_names_file(user: User, make_patient, tmp_path: Path):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='image-upload')
    notes = tmp_path / 'notes.dcm'
    notes.write_text('not an image')
    await upload(user, 'image-upload', [Path(get_testdata_file('CT_small.dcm')), notes])
    await user.should_see('notes.dcm', retries=100)
    await user.should_see(marker='no-images')
    assert _count(StudyFile) == 0
    assert _blob_files() == []


async def test_submit_incomplete_lists_missing(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='submit')
    user.find(marker='submit').click()
    await user.should_see('Cannot submit yet. Missing: type of examination, body part, clinical question')
    with db.session_scope() as session:
        statuses = session.scalars(select(Examination.status)).all()
    assert statuses == ['draft']


async def test_draft_details_survive_reload(user: User, make_patient):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='save-draft')
    set_value(user, 'modality', 'MR')
    user.find(marker='body_part').type('Left knee')
    user.find(marker='save-draft').click()
    await user.should_see('Draft saved.')
    await user.open('/exams')
    await user.should_see('MR Left knee')
    await user.should_see('Draft')


async def test_prior_report_pdf_attached(user: User, make_patient, tmp_path: Path):
    make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='prior-upload')
    report = tmp_path / 'first-report.pdf'
    report.write_bytes(b'%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n')
    await upload(user, 'prior-upload', [report])
    await user.should_see(marker='prior-report-file', retries=100)
    await user.should_see('first-report.pdf')


def _status(exam_id: str) -> str:
    with db.session_scope() as session:
        return session.scalars(select(Examination.status).where(Examination.id == exam_id)).one()


async def test_cancel_awaiting_payment(user: User, make_patient):
    from tests.services.flow import submitted

    patient = make_patient(email='carol@example.org')
    exam_id = submitted(patient)
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}')
    await user.should_see('Awaiting payment')
    user.find(marker='cancel').click()
    await user.should_see('Cancel this examination?')
    assert 'nothing is charged' in dialog_text(user, 'cancel-confirm')
    user.find(marker='cancel-confirm-cancel').click()
    assert not dialog_is_open(user, 'cancel-confirm')
    assert _status(exam_id) == 'awaiting_payment'

    user.find(marker='cancel').click()
    user.find(marker='cancel-confirm-confirm').click()
    await user.should_see('Cancelled', retries=40)
    assert _status(exam_id) == 'cancelled'


async def test_admin_cancel_names_refund(user: User, admin, make_patient):
    from tests.services.flow import paid

    exam_id = paid(make_patient(email='carol@example.org'))
    await sign_in(user, 'admin@example.org')
    await user.should_see('Admin panel')
    await user.open(f'/exams/{exam_id}')
    user.find(marker='cancel').click()
    await user.should_see('Cancel this examination?')
    text = dialog_text(user, 'cancel-confirm')
    assert 'The payment of 150.00 EUR is refunded.' in text
    assert 'cannot be reopened' in text
    assert _status(exam_id) == 'pending'


async def test_suggested_type_is_saved(user: User, make_patient):
    patient = make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='image-upload')
    await upload(user, 'image-upload', [Path(get_testdata_file('MR_small.dcm'))])
    await user.should_see('DICOM image')
    with db.session_scope() as session:
        exam = session.scalars(select(Examination).where(Examination.patient_id == patient.patient_id)).one()
        assert exam.modality == 'MR'


async def test_details_saved_on_blur(user: User, make_patient):
    patient = make_patient(email='carol@example.org')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='body_part')
    user.find(marker='body_part').type('Left knee').trigger('blur')
    with db.session_scope() as session:
        exam = session.scalars(select(Examination).where(Examination.patient_id == patient.patient_id)).one()
        assert exam.body_part == 'Left knee'


async def test_images_show_patient_and_body_part(user: User, make_patient, tmp_path: Path):
    from tests.services.dicom_files import write_variant

    make_patient(email='carol@example.org')
    scan = write_variant(tmp_path / 'scan.dcm', SpecificCharacterSet='ISO_IR 148', PatientName='Yılmaz^Şükrü',
                         PatientSex='M', PatientAge='045Y', BodyPartExamined='ABDOMEN')
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    user.find(marker='new-exam').click()
    await user.should_see(marker='image-upload')
    await upload(user, 'image-upload', [scan])
    await user.should_see('Patient: Yılmaz, Şükrü · male · 45 years', retries=100)
    await user.should_see('ABDOMEN')


async def test_link_only_exam_shows_link(user: User, make_patient):
    from tests.services.flow import paid

    exam_id = paid(make_patient(email='carol@example.org'))
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}')
    await user.should_see(marker='image-links')
    await user.should_see('Images stored elsewhere, at this link:')
    link = user.find(marker='image-link-url').elements.pop()
    assert link.props['href'] == 'https://pacs.example.org/share/abc'
    await user.should_not_see(marker='no-images')


async def test_link_only_draft_no_empty_note(user: User, make_patient):
    from tests.services.flow import draft_with_link

    exam_id = draft_with_link(make_patient(email='carol@example.org'))
    await sign_in(user, 'carol@example.org')
    await user.should_see('My examinations')
    await user.open(f'/exams/{exam_id}/edit?step=images')
    await user.should_see('https://pacs.example.org/share/abc')
    await user.should_not_see(marker='no-images')

    # Without its link, the draft has no images again.
    user.find(marker='remove-link').click()
    await user.should_see(marker='no-images')
