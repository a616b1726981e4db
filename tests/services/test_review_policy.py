"""De-identified review: what doctors, patients and admins get from the zip, the summary and the viewer."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select

from secondopinion.db import session_scope
from secondopinion.models import AuditEvent
from secondopinion.services import examinations, payments, review_policy, studies, viewer
from secondopinion.services.errors import PermissionDeniedError

FILES = ['CT_small.dcm', 'MR_small.dcm']


@pytest.fixture
def patient(make_patient):
    return make_patient()


@pytest.fixture
def pending_exam(patient) -> str:
    exam_id = examinations.create_draft(actor=patient)
    examinations.update_details(actor=patient, examination_id=exam_id, modality='CT', body_part='Chest',
                                clinical_question='Is it benign?')
    studies.add_files(actor=patient, examination_id=exam_id,
                      files=[(name, Path(get_testdata_file(name))) for name in FILES])
    examinations.submit(actor=patient, examination_id=exam_id)
    url = payments.start_checkout(actor=patient, examination_id=exam_id)
    payments.complete_test_checkout(actor=patient, provider_ref=url.rsplit('/', 1)[1])
    return exam_id


def _zip_files(actor, exam_id: str) -> list[bytes]:
    _name, chunks = studies.stream_images_zip(actor=actor, examination_id=exam_id)
    archive = zipfile.ZipFile(io.BytesIO(b''.join(chunks)))
    return [archive.read(name) for name in sorted(archive.namelist())]


def _originals() -> set[bytes]:
    return {Path(get_testdata_file(name)).read_bytes() for name in FILES}


def test_doctor_zip_deidentified_when_on(admin, make_doctor, patient, pending_exam):
    doctor = make_doctor()
    review_policy.set_exam_choice(actor=admin, examination_id=pending_exam, choice=True)

    files = _zip_files(doctor, pending_exam)

    assert len(files) == 2
    for data in files:
        dataset = pydicom.dcmread(io.BytesIO(data))
        assert dataset.PatientIdentityRemoved == 'YES'
        assert not dataset.PatientName
        assert not dataset.PatientID
        assert 'PatientBirthDate' not in dataset or not dataset.PatientBirthDate
        original = pydicom.dcmread(get_testdata_file(f'{dataset.Modality}_small.dcm'))
        assert dataset.StudyInstanceUID != original.StudyInstanceUID
        assert np.array_equal(dataset.pixel_array, original.pixel_array)


def test_patient_zip_keeps_originals(admin, patient, pending_exam):
    review_policy.set_global_default(actor=admin, enabled=True)

    assert set(_zip_files(patient, pending_exam)) == _originals()
    assert set(_zip_files(admin, pending_exam)) == _originals()


def test_global_default_and_exam_override(admin, make_doctor, pending_exam):
    doctor = make_doctor()
    assert set(_zip_files(doctor, pending_exam)) == _originals()

    review_policy.set_global_default(actor=admin, enabled=True)
    assert set(_zip_files(doctor, pending_exam)).isdisjoint(_originals())

    review_policy.set_exam_choice(actor=admin, examination_id=pending_exam, choice=False)
    assert set(_zip_files(doctor, pending_exam)) == _originals()
    assert review_policy.get_exam_policy(actor=admin, examination_id=pending_exam).effective is False


def test_summary_and_viewer_hide_name(admin, make_doctor, pending_exam):
    doctor = make_doctor()
    summary = studies.get_study_summary(actor=doctor, examination_id=pending_exam)
    assert any(study.patient_name for study in summary.studies)
    series_id = summary.studies[0].series[0].id
    labels = dict(viewer.series_header(actor=doctor, examination_id=pending_exam, series_id=series_id))
    assert 'Patient' in labels

    review_policy.set_exam_choice(actor=admin, examination_id=pending_exam, choice=True)
    summary = studies.get_study_summary(actor=doctor, examination_id=pending_exam)
    rows = dict(viewer.series_header(actor=doctor, examination_id=pending_exam, series_id=series_id))

    assert summary.deidentified
    assert [study.patient_name for study in summary.studies] == ['', '']
    assert 'Patient' not in rows
    assert 'Patient ID' not in rows
    assert rows['Identity removed'] == 'YES'
    assert rows['Sex']


def test_stored_files_unchanged(admin, make_doctor, pending_exam, tmp_path):
    doctor = make_doctor()
    review_policy.set_exam_choice(actor=admin, examination_id=pending_exam, choice=True)
    _zip_files(doctor, pending_exam)

    stored = {path.read_bytes() for path in (tmp_path / 'data' / 'blobs').rglob('*') if path.is_file()
              and path.suffix != '.png' and path.read_bytes()[128:132] == b'DICM'}
    assert stored == _originals()


def test_changes_need_admin_and_are_audited(admin, make_doctor, pending_exam):
    doctor = make_doctor()
    with pytest.raises(PermissionDeniedError):
        review_policy.set_global_default(actor=doctor, enabled=True)
    with pytest.raises(PermissionDeniedError):
        review_policy.set_exam_choice(actor=doctor, examination_id=pending_exam, choice=True)

    review_policy.set_global_default(actor=admin, enabled=True)
    review_policy.set_exam_choice(actor=admin, examination_id=pending_exam, choice=None)

    with session_scope() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.actor_user_id == admin.user_id)))
    assert 'setting.changed' in actions
    assert 'examination.deidentify_changed' in actions
    assert review_policy.get_global_default(actor=admin) is True
