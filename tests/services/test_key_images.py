"""Key images: slices the reporting doctor adds to the report, printed in its PDF with their window."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import zipfile

import pytest
from sqlalchemy import func, select

from secondopinion import db
from secondopinion.models import AuditEvent, ReportKeyImage
from secondopinion.services import examinations, key_images, privacy, profile, reports, viewer
from secondopinion.services.errors import ConflictError, NotFoundError, ValidationError
from secondopinion.services.storage import get_storage
from tests.conftest import PASSWORD

from .dicom_files import pydicom_file
from .flow import REPORT
from .test_viewer import multiframe_instances, paid_exam


@pytest.fixture
def case(make_patient, make_doctor, tmp_path):  # noqa: ANN201
    """An examination with a CT slice and a 15-frame series, accepted by a doctor."""
    patient, doctor = make_patient(), make_doctor()
    exam_id = paid_exam(patient, [pydicom_file('CT_small.dcm'), *multiframe_instances(tmp_path)])
    examinations.accept(actor=doctor, examination_id=exam_id)
    series = {item.modality: item for item in viewer.list_viewer_series(actor=doctor, examination_id=exam_id)}
    return patient, doctor, exam_id, series


def _pdf_images(pdf: bytes, tmp_path) -> list[list[str]]:  # noqa: ANN001
    """Return the rows of `pdfimages -list` for the PDF's images, the logo included and its soft mask left out."""
    if shutil.which('pdfimages') is None:
        pytest.skip('pdfimages is missing: install poppler-utils')
    path = tmp_path / 'report.pdf'
    path.write_bytes(pdf)
    output = subprocess.run(['pdfimages', '-list', str(path)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in output.splitlines()[2:] if line.strip()]
    return [row for row in rows if row[2] == 'image']


def _pdf_text(pdf: bytes, tmp_path) -> str:  # noqa: ANN001
    path = tmp_path / 'report-text.pdf'
    path.write_bytes(pdf)
    return subprocess.run(['pdftotext', '-layout', str(path), '-'], capture_output=True, text=True,
                          check=True).stdout


def _download(actor, exam_id: str, version: int | None = None) -> bytes:  # noqa: ANN001
    _name, chunks = reports.open_report_pdf(actor=actor, examination_id=exam_id, version=version)
    return b''.join(chunks)


def test_key_images_printed_in_pdf(case, tmp_path):
    patient, doctor, exam_id, series = case
    ct, dose = series['CT'], series['RTDOSE']
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=ct.id, slice_index=0,
                             window_center=40, window_width=400, caption='Nodule, right upper lobe')
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=dose.id, slice_index=14)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)

    pdf = _download(patient, exam_id)
    images = _pdf_images(pdf, tmp_path)
    # The logo and the two key images; JPEG images are embedded as DCT streams.
    assert len(images) == 3
    assert sum(1 for row in images if row[8] == 'jpeg') == 2
    text = _pdf_text(pdf, tmp_path)
    assert 'Key images' in text
    assert 'Nodule, right upper lobe' in text
    assert 'slice 1, window C 40 / W 400' in text
    assert 'slice 15, file window' in text


def test_report_without_key_images_has_none(case, tmp_path):
    patient, doctor, exam_id, _series = case
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    pdf = _download(patient, exam_id)
    assert len(_pdf_images(pdf, tmp_path)) == 1  # the logo only
    assert 'Key images' not in _pdf_text(pdf, tmp_path)


def test_same_slice_updates_caption(case):
    _patient, doctor, exam_id, series = case
    first = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id,
                                     slice_index=0, caption='First look')
    again = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id,
                                     slice_index=0, window_center=-600, window_width=1500, caption='Lung window')
    assert again == first
    [item] = key_images.list_key_images(actor=doctor, examination_id=exam_id)
    assert item.caption == 'Lung window'
    assert (item.window_center, item.window_width) == (-600, 1500)


def test_at_most_four_key_images(case):
    _patient, doctor, exam_id, series = case
    dose = series['RTDOSE']
    for index in range(key_images.MAX_KEY_IMAGES):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=dose.id, slice_index=index)
    with pytest.raises(ValidationError, match='at most 4 key images'):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=dose.id, slice_index=10)
    assert len(key_images.list_key_images(actor=doctor, examination_id=exam_id)) == 4


def test_concurrent_adds_keep_the_limit(case):
    _patient, doctor, exam_id, series = case
    dose = series['RTDOSE']
    for index in range(key_images.MAX_KEY_IMAGES - 1):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=dose.id, slice_index=index)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def add(index: int) -> None:
        barrier.wait()
        try:
            key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=dose.id, slice_index=index)
            outcomes.append('added')
        except ValidationError:
            outcomes.append('rejected')
        except Exception as error:  # noqa: BLE001 (a database lock timeout would show here)
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=add, args=(10 + number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count('added') == 1, outcomes
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ReportKeyImage)) == key_images.MAX_KEY_IMAGES


@pytest.mark.parametrize(('arguments', 'message'), [
    ({'slice_index': 1}, 'Slice 2 does not exist: the series has 1 slices'),
    ({'slice_index': -1}, 'Slice 0 does not exist'),
    ({'slice_index': 0, 'window_center': 40}, 'both the window center and the window width'),
    ({'slice_index': 0, 'window_center': 40, 'window_width': 0}, 'positive number'),
    ({'slice_index': 0, 'caption': 'x' * 201}, 'at most 200 characters'),
])
def test_invalid_key_image_rejected(case, arguments, message):
    _patient, doctor, exam_id, series = case
    with pytest.raises(ValidationError, match=message):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, **arguments)
    assert key_images.list_key_images(actor=doctor, examination_id=exam_id) == []


def test_series_of_other_examination_rejected(case, make_patient):
    _patient, doctor, exam_id, _series = case
    other_patient = make_patient()
    other_exam = paid_exam(other_patient, [pydicom_file('MR_small.dcm')])
    [other_series] = viewer.list_viewer_series(actor=other_patient, examination_id=other_exam)
    with pytest.raises(NotFoundError):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=other_series.id, slice_index=0)


def test_only_reporting_doctor_adds(case, make_doctor):
    patient, _doctor, exam_id, series = case
    other = make_doctor()
    with pytest.raises(NotFoundError):
        key_images.add_key_image(actor=other, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    with pytest.raises(Exception, match='role|permission|not allowed|Doctor'):
        key_images.add_key_image(actor=patient, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    assert key_images.list_key_images(actor=_doctor, examination_id=exam_id) == []


def test_patient_sees_key_images_once_final(case):
    patient, doctor, exam_id, series = case
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    assert key_images.list_key_images(actor=patient, examination_id=exam_id) == []
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    [item] = key_images.list_key_images(actor=patient, examination_id=exam_id)
    assert item.slice_index == 0


def test_final_report_locks_key_images(case):
    _patient, doctor, exam_id, series = case
    item = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    with pytest.raises(ConflictError, match='final'):
        key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0,
                                 caption='Changed')
    with pytest.raises(ConflictError, match='final'):
        key_images.remove_key_image(actor=doctor, examination_id=exam_id, key_image_id=item)


def test_remove_key_image(case):
    _patient, doctor, exam_id, series = case
    item = key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    key_images.remove_key_image(actor=doctor, examination_id=exam_id, key_image_id=item)
    assert key_images.list_key_images(actor=doctor, examination_id=exam_id) == []
    with pytest.raises(NotFoundError):
        key_images.remove_key_image(actor=doctor, examination_id=exam_id, key_image_id=item)
    with db.session_scope() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == exam_id)))
    assert 'report.key_image_added' in actions
    assert 'report.key_image_removed' in actions


def test_unrenderable_key_image_blocks_finalize(case):
    patient, doctor, exam_id, series = case
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0)
    # The stored file disappears (a storage fault), so the slice can no longer be rendered.
    viewer.clear_caches()
    with db.session_scope() as session:
        from secondopinion.models import StudyFile
        keys = list(session.scalars(select(StudyFile.storage_key).where(StudyFile.series_id == series['CT'].id)))
    for key in keys:
        get_storage().delete(key)

    with pytest.raises(ValidationError, match=r'Key image 1 \(Series .*slice 1\) cannot be rendered'):
        reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    assert reports.get_report(actor=patient, examination_id=exam_id) is None


def test_addendum_pdf_keeps_key_images(case, tmp_path):
    patient, doctor, exam_id, series = case
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0,
                             caption='Nodule')
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)
    reports.add_addendum(actor=doctor, examination_id=exam_id, text='The nodule measures 7 mm.')
    pdf = _download(patient, exam_id, version=2)
    assert len(_pdf_images(pdf, tmp_path)) == 2
    assert 'Nodule' in _pdf_text(pdf, tmp_path)


def test_export_and_deletion_include_key_images(case):
    patient, doctor, exam_id, series = case
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0,
                             window_center=40, window_width=400, caption='Nodule')
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)

    _name, chunks = privacy.export_patient_data(actor=patient)
    with zipfile.ZipFile(io.BytesIO(b''.join(chunks))) as archive:
        exported = ' '.join(json.dumps(json.loads(archive.read(name)))
                            for name in archive.namelist() if name.endswith('.json'))
    assert '"caption": "Nodule"' in exported
    assert '"window_width": 400.0' in exported

    privacy.delete_patient_account(actor=patient, password=PASSWORD)
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ReportKeyImage)) == 0


def test_pdf_labels_in_patient_language(case, tmp_path):
    patient, doctor, exam_id, series = case
    profile.set_language(actor=patient, language='tr')
    key_images.add_key_image(actor=doctor, examination_id=exam_id, series_id=series['CT'].id, slice_index=0,
                             window_center=40, window_width=400, caption='Nodule, right upper lobe')
    reports.finalize(actor=doctor, examination_id=exam_id, **REPORT)

    text = _pdf_text(_download(patient, exam_id), tmp_path)
    assert 'Anahtar görüntüler' in text
    assert 'kesit 1, pencere M 40 / G 400' in text
    # The doctor's caption stays as written.
    assert 'Nodule, right upper lobe' in text
    assert 'Key images' not in text
