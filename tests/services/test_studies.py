import hashlib
import io
import logging
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, pixel_array
from sqlalchemy import select

from secondopinion import db
from secondopinion.config import reset_settings
from secondopinion.models import AuditEvent, ExamStatus, StudyFile
from secondopinion.services import studies
from secondopinion.services.dicom import parse_dicom, render_thumbnail
from secondopinion.services.errors import ConflictError, NotFoundError, ValidationError
from secondopinion.services.storage import get_storage

from .dicom_files import (
    create_draft, dicomdir_folder, jpeg_bytes, make_zip, mark_first_entry_encrypted, row_counts, set_status,
    sha256_of, stored_blobs, pydicom_file, zip_folder,
)

# Contents of pydicom's dicomdirtests folder, counted from its files.
CD_IMAGES = 81
CD_STUDIES = 7
CD_SERIES = 14
CD_SKIPPED = 10  # 8 DICOMDIR files and 2 README files
TINY_ALPHA_IMAGES = 50


@pytest.fixture
def patient(make_patient):
    return make_patient()


@pytest.fixture
def exam_id(patient):
    return create_draft(patient)


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """A private system temporary folder, so tests can check that extraction leaves nothing in it."""
    folder = tmp_path / 'system-tmp'
    folder.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(folder))
    return folder


def upload_copy(tmp_path: Path, name: str, source: Path | bytes) -> tuple[str, Path]:
    """Copy a file to a temporary upload path, as the upload route does, and return (browser name, path)."""
    target = tmp_path / 'uploads' / f'{len(list(tmp_path.glob("uploads/*")))}-{Path(name).name}'
    target.parent.mkdir(exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        shutil.copyfile(source, target)
    return name, target


def assert_nothing_stored(exam_id: str) -> None:
    assert stored_blobs() == []
    assert row_counts(exam_id) == {'studies': 0, 'series': 0, 'files': 0}


def audit_events(action: str) -> list[AuditEvent]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- Upload of loose files --------------------------------------------------------------------------------------


def test_upload_ct_and_mr(patient, exam_id, tmp_path):
    ct, mr = pydicom_file('CT_small.dcm'), pydicom_file('MR_small.dcm')

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[
        upload_copy(tmp_path, 'CT_small.dcm', ct), upload_copy(tmp_path, 'MR_small.dcm', mr)])

    assert summary.accepted == 2
    assert summary.duplicates == 0
    assert summary.skipped_count == 0
    assert summary.study_count == 2
    assert summary.series_count == 2

    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    assert images.study_count == 2
    assert images.series_count == 2
    assert images.image_count == 2
    assert images.total_bytes == ct.stat().st_size + mr.stat().st_size
    by_modality = {study.modality: study for study in images.studies}
    assert set(by_modality) == {'CT', 'MR'}
    assert by_modality['CT'].date.isoformat() == '2004-01-19'
    assert by_modality['MR'].date.isoformat() == '2004-08-26'
    assert by_modality['CT'].description == str(pydicom.dcmread(ct).StudyDescription)
    assert by_modality['MR'].description == ''
    assert by_modality['CT'].uid == str(pydicom.dcmread(ct).StudyInstanceUID)
    assert [series.image_count for series in by_modality['CT'].series] == [1]
    assert by_modality['CT'].series[0].has_thumbnail
    assert by_modality['MR'].series[0].has_thumbnail


def test_upload_stores_hash_size_and_uids(patient, exam_id, tmp_path):
    ct = pydicom_file('CT_small.dcm')

    studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'CT_small.dcm', ct)])

    with db.session_scope() as session:
        row = session.scalars(select(StudyFile).where(StudyFile.examination_id == exam_id)).one()
        assert row.kind == 'dicom'
        assert row.sha256 == sha256_of(ct)
        assert row.size_bytes == ct.stat().st_size
        assert row.sop_instance_uid == str(pydicom.dcmread(ct).SOPInstanceUID)
        assert row.instance_number == 1
        assert row.original_name == 'CT_small.dcm'
        assert row.content_type == 'application/dicom'
        assert re.fullmatch(rf'exams/{exam_id}/files/[0-9a-f]{{32}}\.dcm', row.storage_key)
        assert row.series_id is not None


def test_upload_writes_audit_event(patient, exam_id, tmp_path):
    studies.add_files(actor=patient, examination_id=exam_id, files=[
        upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))])

    events = audit_events('study.uploaded')
    assert len(events) == 1
    assert events[0].object_id == exam_id
    assert events[0].detail['files'] == 1
    assert events[0].actor_user_id == patient.user_id


def test_text_file_renamed_dcm_rejected(patient, exam_id, tmp_path):
    upload = upload_copy(tmp_path, 'notes.dcm', b'These are my notes about the scan.\n' * 20)

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload])

    assert 'notes.dcm is not a DICOM file' in str(caught.value)
    assert 'Choose only DICOM images' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_jpeg_renamed_dcm_rejected(patient, exam_id, tmp_path):
    upload = upload_copy(tmp_path, 'photo.dcm', jpeg_bytes())

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload])

    assert 'photo.dcm is not a DICOM file' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_mixed_batch_stores_nothing(patient, exam_id, tmp_path):
    files = [
        upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm')),
        upload_copy(tmp_path, 'report.txt', b'Findings: none.'),
        upload_copy(tmp_path, 'MR_small.dcm', pydicom_file('MR_small.dcm')),
        upload_copy(tmp_path, 'viewer.exe', b'MZ' + b'\x00' * 200),
    ]

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=files)

    message = str(caught.value)
    assert 'report.txt' in message
    assert 'viewer.exe' in message
    assert 'CT_small.dcm' not in message
    assert 'Nothing from this upload was saved.' in message
    assert_nothing_stored(exam_id)
    assert audit_events('study.uploaded') == []


def test_loose_dicomdir_skipped(patient, exam_id, tmp_path):
    files = [upload_copy(tmp_path, 'DICOMDIR', dicomdir_folder() / 'DICOMDIR'),
             upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))]

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=files)

    assert summary.accepted == 1
    assert summary.skipped_count == 1
    assert summary.skipped_names == ['DICOMDIR']


def test_only_dicomdir_rejected(patient, exam_id, tmp_path):
    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id,
                          files=[upload_copy(tmp_path, 'DICOMDIR', dicomdir_folder() / 'DICOMDIR')])

    assert 'No DICOM images were found' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_no_files_rejected(patient, exam_id):
    with pytest.raises(ValidationError):
        studies.add_files(actor=patient, examination_id=exam_id, files=[])


def test_file_without_preamble_accepted(patient, exam_id, tmp_path):
    # A bare dataset without the 128-byte preamble, "DICM" prefix and file meta information.
    upload = upload_copy(tmp_path, 'plan', pydicom_file('ExplVR_LitEndNoMeta.dcm'))

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[upload])

    assert summary.accepted == 1
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    assert images.studies[0].modality == 'RTPLAN'
    assert images.studies[0].series[0].has_thumbnail is False


def test_duplicate_upload_skipped(patient, exam_id, tmp_path):
    ct = pydicom_file('CT_small.dcm')
    studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'a.dcm', ct)])

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'b.dcm', ct)])

    assert summary.accepted == 0
    assert summary.duplicates == 1
    assert row_counts(exam_id) == {'studies': 1, 'series': 1, 'files': 1}
    assert len([path for path in stored_blobs() if path.suffix == '.dcm']) == 1


def test_duplicate_within_one_call_skipped(patient, exam_id, tmp_path):
    ct = pydicom_file('CT_small.dcm')

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[
        upload_copy(tmp_path, 'a.dcm', ct), upload_copy(tmp_path, 'copy of a.dcm', ct)])

    assert summary.accepted == 1
    assert summary.duplicates == 1
    assert row_counts(exam_id)['files'] == 1


def test_second_upload_extends_series(patient, exam_id, tmp_path):
    series_folder = dicomdir_folder() / '77654033' / 'CT2'
    first, *rest = sorted(series_folder.iterdir())
    studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, first.name, first)])

    summary = studies.add_files(actor=patient, examination_id=exam_id,
                                files=[upload_copy(tmp_path, path.name, path) for path in rest])

    assert summary.accepted == len(rest)
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    assert images.study_count == 1
    assert images.series_count == 1
    assert images.studies[0].series[0].image_count == 1 + len(rest)
    assert len([path for path in stored_blobs() if path.suffix == '.png']) == 1


def test_concurrent_duplicate_skipped(patient, exam_id, tmp_path, monkeypatch):
    ct = pydicom_file('CT_small.dcm')
    original_check = studies._UploadBatch.raise_if_rejected
    concurrent_done = []

    def check_then_upload_concurrently(batch):
        original_check(batch)
        if not concurrent_done:
            concurrent_done.append(True)
            studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'b.dcm', ct)])

    monkeypatch.setattr(studies._UploadBatch, 'raise_if_rejected', check_then_upload_concurrently)

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'a.dcm', ct)])

    assert summary.accepted == 0
    assert summary.duplicates == 1
    assert row_counts(exam_id) == {'studies': 1, 'series': 1, 'files': 1}
    assert len([path for path in stored_blobs() if path.suffix == '.dcm']) == 1
    assert len([path for path in stored_blobs() if path.suffix == '.png']) == 1


def test_file_over_size_limit_rejected(patient, exam_id, tmp_path, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_MAX_FILE_BYTES', '10000')
    reset_settings()

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[
            upload_copy(tmp_path, 'MR_small.dcm', pydicom_file('MR_small.dcm')),
            upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))])

    assert 'CT_small.dcm is 38.3 KB, more than the limit of 9.8 KB per file' in str(caught.value)
    assert 'MR_small.dcm' not in str(caught.value)
    assert_nothing_stored(exam_id)


def test_examination_size_limit_rejected(patient, exam_id, tmp_path, monkeypatch):
    ct, mr = pydicom_file('CT_small.dcm'), pydicom_file('MR_small.dcm')
    monkeypatch.setenv('SECONDOPINION_MAX_EXAMINATION_BYTES', str(ct.stat().st_size + 100))
    reset_settings()
    studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'ct.dcm', ct)])

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'mr.dcm', mr)])

    assert 'more than the limit of' in str(caught.value)
    assert 'per examination' in str(caught.value)
    assert row_counts(exam_id)['files'] == 1
    assert len([path for path in stored_blobs() if path.suffix == '.dcm']) == 1


def test_upload_to_submitted_exam_rejected(patient, exam_id, tmp_path):
    set_status(exam_id, ExamStatus.AWAITING_PAYMENT)

    with pytest.raises(ConflictError):
        studies.add_files(actor=patient, examination_id=exam_id, files=[
            upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))])

    assert_nothing_stored(exam_id)


def test_failure_while_inserting_deletes_blobs(patient, exam_id, tmp_path, monkeypatch):
    def broken_record(*args, **kwargs):
        raise RuntimeError('database went away')

    monkeypatch.setattr(studies.audit, 'record', broken_record)

    with pytest.raises(RuntimeError):
        studies.add_files(actor=patient, examination_id=exam_id, files=[
            upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))])

    assert_nothing_stored(exam_id)


# --- Upload of zip archives -------------------------------------------------------------------------------------


def test_zip_of_cd_folder(patient, exam_id, tmp_path, temp_dir):
    archive = zip_folder(dicomdir_folder(), tmp_path / 'cd.zip')

    summary = studies.add_files(actor=patient, examination_id=exam_id,
                                files=[upload_copy(tmp_path, 'cd.zip', archive)])

    assert summary.accepted == CD_IMAGES
    assert summary.duplicates == 0
    assert summary.skipped_count == CD_SKIPPED
    assert 'cd.zip/DICOMDIR' in summary.skipped_names
    assert 'cd.zip/README.txt' in summary.skipped_names
    assert 'cd.zip/TINY_ALPHA/DICOMDIR' in summary.skipped_names
    assert summary.study_count == CD_STUDIES
    assert summary.series_count == CD_SERIES
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    assert images.image_count == CD_IMAGES
    assert images.study_count == CD_STUDIES
    assert images.series_count == CD_SERIES
    assert list(temp_dir.iterdir()) == []


def test_zip_files_without_extension_accepted(patient, exam_id, tmp_path):
    tiny_alpha = dicomdir_folder() / 'TINY_ALPHA'
    archive = zip_folder(tiny_alpha, tmp_path / 'tiny.zip')

    summary = studies.add_files(actor=patient, examination_id=exam_id,
                                files=[upload_copy(tmp_path, 'tiny.zip', archive)])

    assert summary.accepted == TINY_ALPHA_IMAGES
    assert summary.skipped_count == 2
    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    series = images.studies[0].series[0]
    assert series.image_count == TINY_ALPHA_IMAGES
    assert series.has_thumbnail is False  # these files carry no pixel data
    assert images.studies[0].uid == str(pydicom.dcmread(tiny_alpha / 'PT000000' / 'ST000000' / 'SE000000'
                                                        / 'IM000000').StudyInstanceUID)


def test_zip_detected_by_magic_bytes(patient, exam_id, tmp_path):
    archive = zip_folder(dicomdir_folder() / '77654033', tmp_path / 'cd.zip')

    summary = studies.add_files(actor=patient, examination_id=exam_id,
                                files=[upload_copy(tmp_path, 'CDROM', archive)])

    assert summary.accepted == 7
    assert summary.study_count == 2


def test_zip_without_dicom_rejected(patient, exam_id, tmp_path, temp_dir):
    archive = make_zip(tmp_path / 'docs.zip', {'README.txt': b'Insert the CD', 'viewer/setup.exe': b'MZ' * 100})

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'docs.zip', archive)])

    assert 'docs.zip contains no DICOM images' in str(caught.value)
    assert_nothing_stored(exam_id)
    assert list(temp_dir.iterdir()) == []


def test_zip_slip_entry_rejected(patient, exam_id, tmp_path):
    ct = pydicom_file('CT_small.dcm').read_bytes()
    archive = make_zip(tmp_path / 'evil.zip', {'images/ct.dcm': ct, '../outside.dcm': ct})

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'evil.zip', archive)])

    assert 'evil.zip contains the entry "../outside.dcm"' in str(caught.value)
    assert_nothing_stored(exam_id)
    assert not (tmp_path / 'outside.dcm').exists()


def test_zip_absolute_entry_rejected(patient, exam_id, tmp_path):
    archive = make_zip(tmp_path / 'abs.zip', {'/etc/ct.dcm': pydicom_file('CT_small.dcm').read_bytes()})

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'abs.zip', archive)])

    assert '"/etc/ct.dcm"' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_zip_bomb_entry_rejected(patient, exam_id, tmp_path, temp_dir):
    archive = make_zip(tmp_path / 'bomb.zip', {
        'ct.dcm': pydicom_file('CT_small.dcm').read_bytes(),
        'padding.bin': b'\x00' * (8 * 1024 * 1024),  # deflates to about 8 KB, a ratio near 1000:1
    })

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'bomb.zip', archive)])

    assert 'bomb.zip contains the entry "padding.bin" with a compression ratio of' in str(caught.value)
    assert 'above the limit of 200:1' in str(caught.value)
    assert_nothing_stored(exam_id)
    assert list(temp_dir.iterdir()) == []


def test_zip_entry_count_limit(patient, exam_id, tmp_path, monkeypatch):
    monkeypatch.setattr(studies, 'MAX_ZIP_ENTRIES', 3)
    archive = make_zip(tmp_path / 'many.zip', {f'file{index}.txt': b'x' for index in range(4)})

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'many.zip', archive)])

    assert 'many.zip contains 4 entries, more than the limit of 3' in str(caught.value)


def test_zip_uncompressed_total_limit(patient, exam_id, tmp_path, monkeypatch):
    monkeypatch.setenv('SECONDOPINION_MAX_EXAMINATION_BYTES', '50000')
    reset_settings()
    ct = pydicom_file('CT_small.dcm').read_bytes()
    archive = make_zip(tmp_path / 'big.zip', {'a.dcm': ct, 'b.dcm': ct})

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'big.zip', archive)])

    assert 'big.zip expands to 76.6 KB, more than the limit of 48.8 KB per examination' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_encrypted_zip_rejected(patient, exam_id, tmp_path):
    archive = make_zip(tmp_path / 'secret.zip', {'ct.dcm': pydicom_file('CT_small.dcm').read_bytes()},
                       compression=zipfile.ZIP_STORED)
    mark_first_entry_encrypted(archive)

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id,
                          files=[upload_copy(tmp_path, 'secret.zip', archive)])

    assert 'secret.zip is password-protected' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_damaged_zip_rejected(patient, exam_id, tmp_path):
    archive = zip_folder(dicomdir_folder() / '77654033', tmp_path / 'cd.zip')
    truncated = archive.read_bytes()[:5000]

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, 'cd.zip', truncated)])

    assert 'cd.zip is a damaged .zip archive' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_other_archive_format_rejected(patient, exam_id, tmp_path):
    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id,
                          files=[upload_copy(tmp_path, 'cd.rar', b'Rar!\x1a\x07\x01\x00' + b'\x00' * 100)])

    assert 'cd.rar is a RAR archive' in str(caught.value)


def test_zip_and_bad_loose_file_store_nothing(patient, exam_id, tmp_path, temp_dir):
    archive = zip_folder(dicomdir_folder() / '98892001', tmp_path / 'cd.zip')
    files = [upload_copy(tmp_path, 'cd.zip', archive), upload_copy(tmp_path, 'scan.jpg', jpeg_bytes())]

    with pytest.raises(ValidationError) as caught:
        studies.add_files(actor=patient, examination_id=exam_id, files=files)

    assert 'scan.jpg is not a DICOM file' in str(caught.value)
    assert_nothing_stored(exam_id)
    assert list(temp_dir.iterdir()) == []


# --- Access -----------------------------------------------------------------------------------------------------


@pytest.fixture
def uploaded(patient, exam_id, tmp_path):
    """The draft with CT_small and MR_small uploaded; returns the examination id."""
    studies.add_files(actor=patient, examination_id=exam_id, files=[
        upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm')),
        upload_copy(tmp_path, 'MR_small.dcm', pydicom_file('MR_small.dcm'))])
    return exam_id


def first_series_id(actor, exam_id) -> int:
    return studies.get_study_summary(actor=actor, examination_id=exam_id).studies[0].series[0].id


def test_other_patient_cannot_add_files(make_patient, uploaded, tmp_path):
    other = make_patient(name='Mallory Other')

    with pytest.raises(NotFoundError):
        studies.add_files(actor=other, examination_id=uploaded, files=[
            upload_copy(tmp_path, 'CT.dcm', pydicom_file('CT_small.dcm'))])

    assert row_counts(uploaded)['files'] == 2


def test_other_patient_cannot_read(make_patient, patient, uploaded):
    other = make_patient(name='Mallory Other')
    series_id = first_series_id(patient, uploaded)

    with pytest.raises(NotFoundError):
        studies.get_study_summary(actor=other, examination_id=uploaded)
    with pytest.raises(NotFoundError):
        studies.get_thumbnail(actor=other, examination_id=uploaded, series_id=series_id)
    with pytest.raises(NotFoundError):
        studies.stream_images_zip(actor=other, examination_id=uploaded)
    assert audit_events('images.downloaded') == []


def test_other_patient_cannot_change(make_patient, patient, uploaded):
    other = make_patient(name='Mallory Other')

    with pytest.raises(NotFoundError):
        studies.clear_images(actor=other, examination_id=uploaded)

    assert row_counts(uploaded)['files'] == 2


def test_doctor_cannot_read_draft(make_doctor, patient, uploaded):
    doctor = make_doctor()
    series_id = first_series_id(patient, uploaded)

    with pytest.raises(NotFoundError):
        studies.get_study_summary(actor=doctor, examination_id=uploaded)
    with pytest.raises(NotFoundError):
        studies.get_thumbnail(actor=doctor, examination_id=uploaded, series_id=series_id)
    with pytest.raises(NotFoundError):
        studies.stream_images_zip(actor=doctor, examination_id=uploaded)


def test_doctor_reads_pending_case(make_doctor, uploaded):
    doctor = make_doctor()
    set_status(uploaded, ExamStatus.PENDING)

    images = studies.get_study_summary(actor=doctor, examination_id=uploaded)
    thumbnail = studies.get_thumbnail(actor=doctor, examination_id=uploaded,
                                      series_id=images.studies[0].series[0].id)
    name, chunks = studies.stream_images_zip(actor=doctor, examination_id=uploaded)

    assert images.image_count == 2
    assert thumbnail.startswith(b'\x89PNG')
    assert name == f'examination-{uploaded[:8]}-images.zip'
    assert len(zipfile.ZipFile(io.BytesIO(b''.join(chunks))).namelist()) == 2


def test_doctor_cannot_add_files(make_doctor, uploaded, tmp_path):
    doctor = make_doctor()

    with pytest.raises(NotFoundError):
        studies.add_files(actor=doctor, examination_id=uploaded, files=[
            upload_copy(tmp_path, 'CT.dcm', pydicom_file('CT_small.dcm'))])


def test_thumbnail_of_series_in_other_exam(patient, uploaded):
    other_exam = create_draft(patient)
    series_id = first_series_id(patient, uploaded)

    with pytest.raises(NotFoundError):
        studies.get_thumbnail(actor=patient, examination_id=other_exam, series_id=series_id)


# --- Thumbnails and zip download --------------------------------------------------------------------------------


def test_thumbnail_decodes(patient, uploaded):
    images = studies.get_study_summary(actor=patient, examination_id=uploaded)
    ct_study = next(study for study in images.studies if study.modality == 'CT')

    png = studies.get_thumbnail(actor=patient, examination_id=uploaded, series_id=ct_study.series[0].id)

    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == 'PNG'
    assert image.mode == 'L'
    assert image.size == (128, 128)


def test_zip_stream_round_trips(patient, exam_id, tmp_path):
    folder = dicomdir_folder() / '77654033'
    originals = sorted(path for path in folder.rglob('*') if path.is_file())
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[upload_copy(tmp_path, path.name, path) for path in originals])

    name, chunks = studies.stream_images_zip(actor=patient, examination_id=exam_id)
    data = b''.join(chunks)

    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == len(originals)
    assert len(set(names)) == len(names)
    entry_hashes = sorted(hashlib.sha256(archive.read(entry)).hexdigest() for entry in names)
    assert entry_hashes == sorted(sha256_of(path) for path in originals)
    for entry in names:
        assert re.fullmatch(r'[0-9]{8}_[A-Za-z0-9._-]+/[0-9]{3}_[A-Za-z0-9._-]+/[0-9]{4}(_[0-9]+)?\.dcm', entry), entry
    assert '19950903_CT_HEAD_BRAIN_WO_CONTRAST/002_Routine_Brain/0018.dcm' in names
    assert len(audit_events('images.downloaded')) == 1


def test_zip_stream_yields_many_chunks(patient, exam_id, tmp_path):
    folder = dicomdir_folder() / '98892001'
    originals = sorted(path for path in folder.rglob('*') if path.is_file())
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[upload_copy(tmp_path, path.name, path) for path in originals])

    _, chunks = studies.stream_images_zip(actor=patient, examination_id=exam_id)
    sizes = [len(chunk) for chunk in chunks]

    assert len(sizes) > len(originals)
    assert max(sizes) < 2 * max(path.stat().st_size for path in originals)
    assert 0 not in sizes


def test_zip_names_unique_for_equal_instance_numbers(patient, exam_id, tmp_path):
    # Two series of one study in this folder both have series number 2 and instance numbers 1 to 3.
    folder = dicomdir_folder() / '98892003' / 'MR2'
    originals = sorted(folder.iterdir())
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[upload_copy(tmp_path, path.name, path) for path in originals])

    _, chunks = studies.stream_images_zip(actor=patient, examination_id=exam_id)
    names = zipfile.ZipFile(io.BytesIO(b''.join(chunks))).namelist()

    assert len(names) == len(originals)
    assert len({name.lower() for name in names}) == len(names)


def test_zip_of_exam_without_images(patient, exam_id):
    with pytest.raises(NotFoundError):
        studies.stream_images_zip(actor=patient, examination_id=exam_id)


# --- Prior report files, removal --------------------------------------------------------------------------------


def test_prior_report_pdf_round_trips(patient, exam_id, tmp_path):
    pdf = b'%PDF-1.4\n% first report\n' + b'x' * 1000
    name, path = upload_copy(tmp_path, 'befund.pdf', pdf)

    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)

    images = studies.get_study_summary(actor=patient, examination_id=exam_id)
    assert len(images.prior_reports) == 1
    report = images.prior_reports[0]
    assert report.name == 'befund.pdf'
    assert report.content_type == 'application/pdf'
    assert report.size == len(pdf)
    read_name, content_type, chunks = studies.open_prior_report(actor=patient, examination_id=exam_id,
                                                                file_id=report.id)
    assert read_name == 'befund.pdf'
    assert content_type == 'application/pdf'
    assert b''.join(chunks) == pdf
    assert images.image_count == 0


def test_prior_report_jpeg_gets_image_type(patient, exam_id, tmp_path):
    name, path = upload_copy(tmp_path, 'report-photo.jpeg', jpeg_bytes())

    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)

    report = studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports[0]
    assert report.content_type == 'image/jpeg'


def test_prior_report_wrong_type_rejected(patient, exam_id, tmp_path):
    name, path = upload_copy(tmp_path, 'report.docx', b'PK\x03\x04 word document')

    with pytest.raises(ValidationError) as caught:
        studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)

    assert 'report.docx is not a PDF, PNG or JPEG file' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_prior_report_too_large_rejected(patient, exam_id, tmp_path, monkeypatch):
    monkeypatch.setattr(studies, 'MAX_PRIOR_REPORT_BYTES', 100)
    name, path = upload_copy(tmp_path, 'scan.pdf', b'%PDF-1.4\n' + b'x' * 200)

    with pytest.raises(ValidationError) as caught:
        studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)

    assert 'scan.pdf is 209 bytes, more than the limit of 100 bytes' in str(caught.value)
    assert_nothing_stored(exam_id)


def test_prior_report_hidden_from_other_patient(make_patient, patient, exam_id, tmp_path):
    name, path = upload_copy(tmp_path, 'report.pdf', b'%PDF-1.4\n')
    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)
    file_id = studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports[0].id
    other = make_patient(name='Mallory Other')

    with pytest.raises(NotFoundError):
        studies.open_prior_report(actor=other, examination_id=exam_id, file_id=file_id)
    with pytest.raises(NotFoundError):
        studies.remove_file(actor=other, examination_id=exam_id, file_id=file_id)


def test_remove_prior_report(patient, exam_id, tmp_path):
    name, path = upload_copy(tmp_path, 'report.png', b'\x89PNG\r\n\x1a\n' + b'\x00' * 50)
    studies.add_prior_report_file(actor=patient, examination_id=exam_id, filename=name, path=path)
    file_id = studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports[0].id

    studies.remove_file(actor=patient, examination_id=exam_id, file_id=file_id)

    assert studies.get_study_summary(actor=patient, examination_id=exam_id).prior_reports == []
    assert_nothing_stored(exam_id)
    with pytest.raises(NotFoundError):
        studies.open_prior_report(actor=patient, examination_id=exam_id, file_id=file_id)


def test_remove_file_ignores_dicom_ids(patient, uploaded):
    with db.session_scope() as session:
        dicom_id = session.scalars(select(StudyFile.id).where(StudyFile.examination_id == uploaded)).first()

    with pytest.raises(NotFoundError):
        studies.remove_file(actor=patient, examination_id=uploaded, file_id=dicom_id)

    assert row_counts(uploaded)['files'] == 2


def test_clear_images_keeps_prior_report(patient, uploaded, tmp_path):
    name, path = upload_copy(tmp_path, 'report.pdf', b'%PDF-1.4\n')
    studies.add_prior_report_file(actor=patient, examination_id=uploaded, filename=name, path=path)

    studies.clear_images(actor=patient, examination_id=uploaded)

    assert row_counts(uploaded) == {'studies': 0, 'series': 0, 'files': 1}
    remaining = stored_blobs()
    assert len(remaining) == 1
    assert remaining[0].suffix == '.pdf'
    images = studies.get_study_summary(actor=patient, examination_id=uploaded)
    assert images.image_count == 0
    assert len(images.prior_reports) == 1


def test_clear_images_then_upload_again(patient, uploaded, tmp_path):
    studies.clear_images(actor=patient, examination_id=uploaded)

    summary = studies.add_files(actor=patient, examination_id=uploaded, files=[
        upload_copy(tmp_path, 'CT_small.dcm', pydicom_file('CT_small.dcm'))])

    assert summary.accepted == 1
    assert summary.duplicates == 0


# --- DICOM parsing and rendering --------------------------------------------------------------------------------


def test_parse_dicomdir_reported_separately():
    info = parse_dicom(dicomdir_folder() / 'DICOMDIR')

    assert info is not None
    assert info.is_dicomdir
    assert info.sop_instance_uid == ''


def test_parse_old_date_format():
    # This file writes its study date as 1997.04.24.
    info = parse_dicom(pydicom_file('ExplVR_BigEnd.dcm'))

    assert info is not None
    assert info.study_date == '19970424'
    assert info.transfer_syntax_uid == '1.2.840.10008.1.2.2'


def test_parse_rejects_non_dicom(tmp_path):
    text = tmp_path / 'notes.dcm'
    text.write_text('not an image')
    jpeg = tmp_path / 'photo.dcm'
    jpeg.write_bytes(jpeg_bytes())
    empty = tmp_path / 'empty.dcm'
    empty.write_bytes(b'')

    assert parse_dicom(text) is None
    assert parse_dicom(jpeg) is None
    assert parse_dicom(empty) is None


def test_thumbnail_inverts_monochrome1():
    path = dicomdir_folder() / '77654033' / 'CR1' / '6154'
    raw = pixel_array(path)

    image = Image.open(io.BytesIO(render_thumbnail(path)))
    rendered = np.asarray(image)

    assert pydicom.dcmread(path).PhotometricInterpretation == 'MONOCHROME1'
    assert rendered.shape == raw.shape
    assert rendered[np.unravel_index(raw.argmax(), raw.shape)] < rendered[np.unravel_index(raw.argmin(), raw.shape)]


def test_thumbnail_applies_window():
    path = pydicom_file('693_J2KI.dcm')  # a 512 x 512 CT with window center 40 and width 100
    dataset = pydicom.dcmread(path)
    values = apply_modality_lut(dataset.pixel_array, dataset)
    center, width = float(dataset.WindowCenter), float(dataset.WindowWidth)

    shown = np.asarray(Image.open(io.BytesIO(render_thumbnail(path, max_size=512))))

    below = values <= center - width / 2
    above = values >= center + width / 2
    inside = ~below & ~above
    assert below.any()
    assert above.any()
    assert inside.any()
    assert (shown[below] == 0).all()
    assert (shown[above] == 255).all()
    assert (shown[inside] > 0).all()
    assert (shown[inside] < 255).all()


def test_thumbnail_without_window_uses_min_max():
    path = pydicom_file('CT_small.dcm')
    dataset = pydicom.dcmread(path)
    values = dataset.pixel_array

    shown = np.asarray(Image.open(io.BytesIO(render_thumbnail(path))))

    assert 'WindowCenter' not in dataset
    assert shown[np.unravel_index(values.argmin(), values.shape)] == 0
    assert shown[np.unravel_index(values.argmax(), values.shape)] == 255


def test_thumbnail_of_multiframe_rgb():
    png = render_thumbnail(pydicom_file('SC_rgb_rle_2frame.dcm'), max_size=64)

    image = Image.open(io.BytesIO(png))
    assert image.mode == 'RGB'
    assert image.size == (64, 64)


def test_thumbnail_of_ybr_jpeg_is_rgb():
    image = Image.open(io.BytesIO(render_thumbnail(pydicom_file('examples_ybr_color.dcm'))))

    assert image.mode == 'RGB'
    assert max(image.size) == 256


def test_thumbnail_none_when_undecodable(caplog):
    with caplog.at_level(logging.WARNING, logger='secondopinion.services.dicom'):
        result = render_thumbnail(pydicom_file('MR_truncated.dcm'))

    assert result is None
    assert 'no thumbnail' in caplog.text


def test_zip_stream_stops_on_damaged_blob(patient, exam_id, tmp_path, caplog):
    ct = pydicom_file('CT_small.dcm')
    studies.add_files(actor=patient, examination_id=exam_id, files=[upload_copy(tmp_path, ct.name, ct)])
    with db.session_scope() as session:
        key = session.scalars(select(StudyFile.storage_key).where(StudyFile.examination_id == exam_id)).one()
    damaged = bytearray(b''.join(get_storage().iter_chunks(key)))
    damaged[-1] ^= 0xFF
    get_storage().save(key, [bytes(damaged)])

    _, chunks = studies.stream_images_zip(actor=patient, examination_id=exam_id)
    with pytest.raises(studies.StoredFileCorruptError):
        b''.join(chunks)
    assert 'does not match its SHA-256' in caplog.text


@pytest.mark.skipif(shutil.which('7z') is None, reason='7-Zip (Debian package p7zip-full) makes the Deflate64 zip')
def test_deflate64_zip_accepted(patient, exam_id, tmp_path):
    source = tmp_path / 'source'
    source.mkdir()
    for name in ('CT_small.dcm', 'MR_small.dcm'):
        shutil.copy(pydicom_file(name), source / name)
    archive = tmp_path / 'windows.zip'
    subprocess.run(['7z', 'a', '-tzip', '-mm=Deflate64', str(archive), 'CT_small.dcm', 'MR_small.dcm'],
                   cwd=source, check=True, capture_output=True, timeout=60)
    with zipfile.ZipFile(archive) as made:
        assert {entry.compress_type for entry in made.infolist()} == {9}

    summary = studies.add_files(actor=patient, examination_id=exam_id, files=[('windows.zip', archive)])
    assert summary.accepted == 2
    assert summary.study_count == 2
