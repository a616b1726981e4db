"""The study uploader's texts in the patient's language, passed to the browser as the `texts` prop."""

from __future__ import annotations

from nicegui.testing import User

from secondopinion.pages.study_uploader import StudyUploader
from secondopinion.services import examinations, profile

from .helpers import sign_in


async def _uploader_props(user: User, make_patient, language: str) -> dict:  # noqa: ANN001
    patient = make_patient('Şükrü Yılmaz', email='sukru@example.org')
    profile.set_language(actor=patient, language=language)
    await sign_in(user, 'sukru@example.org')
    exam_id = examinations.create_draft(actor=patient)
    await user.open(f'/exams/{exam_id}/edit')
    uploaders = user.find(kind=StudyUploader).elements
    assert len(uploaders) == 1
    return uploaders.pop().props


async def test_uploader_labels_in_turkish(user: User, make_patient):
    props = await _uploader_props(user, make_patient, 'tr')

    texts = props['texts']
    assert texts['choose_files'] == 'Dosya seçin'
    assert texts['choose_folder'] == 'Klasör seçin'
    assert texts['cancel'] == 'Yüklemeyi iptal et'
    assert texts['all_sent'] == '{files} gönderildi.'
    assert texts['files_other'] == '{number} dosya'
    assert props['shorthint'] == "DICOM dosyaları ya da CD'nin .zip dosyası."


async def test_uploader_labels_in_english(user: User, make_patient):
    props = await _uploader_props(user, make_patient, 'en')

    texts = props['texts']
    assert texts['choose_files'] == 'Choose files'
    assert texts['choose_folder'] == 'Choose a folder'
    assert texts['cancel'] == 'Cancel upload'
    assert texts['all_sent'] == 'All {files} sent.'
    assert texts['files_one'] == '{number} file'
    assert texts['files_other'] == '{number} files'
    assert props['hint'] == 'DICOM files, a .zip of the CD, or the folder of the CD. You can also drop them here.'
