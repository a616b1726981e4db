"""Upload rejections, submit blockers and question reasons in Turkish under use_language('tr'), English otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.i18n import error_message, translate, use_language
from secondopinion.models import StudyFile
from secondopinion.services import examinations, questions, studies
from secondopinion.services.errors import DomainError, ValidationError

from .flow import draft_with_link


def _both(error: DomainError) -> tuple[str, str]:
    """Return the error's message in English (outside any language block) and in Turkish."""
    english = error_message(error)
    with use_language('tr'):
        turkish = error_message(error)
    return english, turkish


def _stored_files(exam_id: str) -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(StudyFile)
                              .where(StudyFile.examination_id == exam_id))


def test_non_dicom_upload_in_turkish(make_patient, tmp_path):
    patient = make_patient()
    exam_id = draft_with_link(patient)
    path = tmp_path / 'notes.dcm'
    path.write_bytes(b'These are my notes about the scan.\n' * 20)

    with pytest.raises(studies.FilesRejectedError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[('notes.dcm', path)])

    english, turkish = _both(caught.value)
    assert english == ('notes.dcm is not a DICOM file. Choose only DICOM images or a .zip of the CD and upload '
                       'again. Nothing from this upload was saved.')
    assert str(caught.value) == english
    assert turkish == ("notes.dcm bir DICOM dosyası değil. Yalnızca DICOM görüntülerini ya da CD'nin .zip "
                       "dosyasını seçip yeniden yükleyin. Bu yüklemeden hiçbir şey kaydedilmedi.")
    assert _stored_files(exam_id) == 0


def test_rejected_file_reasons_in_turkish(make_patient, tmp_path):
    patient = make_patient()
    exam_id = draft_with_link(patient)
    text = tmp_path / 'notes.dcm'
    text.write_bytes(b'These are my notes about the scan.\n' * 20)
    rar = tmp_path / 'cd.rar'
    rar.write_bytes(b'Rar!\x1a\x07\x01\x00' + b'\x00' * 100)

    with pytest.raises(studies.FilesRejectedError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[('notes.dcm', text), ('cd.rar', rar)])

    reasons = dict(caught.value.files)
    assert reasons['notes.dcm'] == 'Not a DICOM file.'
    assert reasons['cd.rar'].startswith('cd.rar is a RAR archive, and only .zip archives can be read.')
    with use_language('tr'):
        assert translate(reasons['notes.dcm']) == 'DICOM dosyası değil.'
        assert translate(reasons['cd.rar']).startswith('cd.rar bir RAR arşivi; yalnızca .zip arşivleri okunabilir.')
        assert 'Bu yüklemeden hiçbir şey kaydedilmedi.' in error_message(caught.value)
    assert _stored_files(exam_id) == 0


def test_missing_items_in_turkish(make_patient):
    patient = make_patient()
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='',
                                clinical_question='Is it benign?')

    with pytest.raises(ValidationError) as caught:
        examinations.submit(actor=patient, examination_id=exam_id)

    english, turkish = _both(caught.value)
    assert english == 'Cannot submit yet. Missing: body part, images (upload DICOM files or add a link).'
    assert str(caught.value) == english
    assert turkish == ('Henüz gönderilemez. Eksik olanlar: vücut bölgesi, görüntüler (DICOM dosyalarını '
                       'yükleyin ya da bağlantı ekleyin).')


def test_question_reason_in_turkish(make_patient):
    patient = make_patient()
    exam_id = draft_with_link(patient)

    thread = questions.get_thread(actor=patient, examination_id=exam_id)

    assert not thread.can_ask
    assert thread.reason == 'You can ask questions once your report is ready.'
    with use_language('tr'):
        assert translate(thread.reason) == 'Raporunuz hazır olduğunda soru sorabilirsiniz.'
